#!/usr/bin/env bash
# A local demo of several termroom nodes on one machine (`make cluster`):
# PostgreSQL 15 (shared database), Redis (broker between the nodes), two
# termroom nodes `a` and `b`, and haproxy balancing round robin in front of
# them, with no sticky sessions: http://127.0.0.1:3100.
#
# Usage: scripts/cluster.sh [start|stop|status|env|restart NODE]   (default: start)
#   start   starts what is not running yet, one node after the other (the
#           first start of a fresh database creates the schema and the
#           account `admin`, whose password is printed once, at the end)
#   stop    stops everything it started (by the pid files under the base dir),
#           at once: live terminal sessions are closed
#   restart NODE
#           a rolling restart of one node (a, b, …) that cuts no terminal:
#           SIGTERM makes it drain (the nodes run with --drain-secs): haproxy
#           takes it out of the rotation when its /healthz turns 503, new
#           terminals open on the other nodes, its live sessions go on until
#           they end or the drain time is up; then it stops, is started
#           again, and the command returns once haproxy sends it requests
#   status  shows what runs, the nodes' heartbeats and which node answers
#   env     prints `export TERMROOM_…` lines for running termroom
#           subcommands against this cluster (its database, key and broker,
#           so changes reach the nodes at once): eval "$(scripts/cluster.sh env)"
#
# Everything lives under ${CLUSTER_DIR:-./data/cluster}: pg/ (the Postgres
# cluster, initdb once, and its log), node-a/, node-b/ (each node's data
# dir), recordings/ (shared by the nodes, as shared storage would be in
# production), secret.key (the secret key every node uses, generated once),
# backend.password (Postgres role `termroom` and Redis), the logs
# (node-a.log, redis.log, haproxy.log: haproxy's access log names the node
# that served each request) and pid files. Postgres and Redis listen on
# 127.0.0.1 only and ask for that password; the nodes get their database and
# broker URLs in TERMROOM_DATABASE_URL and TERMROOM_BROKER (not on the command
# line, where `ps` would show the password), and run with --local-target
# admins and --trusted-proxy 127.0.0.1 (haproxy sends X-Forwarded-For).
#
# Environment: CLUSTER_DIR, CLUSTER_PORT (3100, haproxy), CLUSTER_PG_PORT
# (55432), CLUSTER_REDIS_PORT (56379), CLUSTER_NODE_PORTS ("3101 3102": one
# node per port, named a, b, c, …), CLUSTER_DRAIN_SECS (120: how long a
# restarted node's terminals may go on), TERMROOM_BIN (target/release/termroom),
# TERMROOM_SITE_ROOT (target/site), RUST_LOG (info). Relative paths are taken
# from the current directory; the defaults from the repository root. The
# ports (and drain time) a running cluster was started with are kept in
# cluster.env there, so `status`, `stop` and `restart` need no variables but
# CLUSTER_DIR.
# Needs: postgresql-15, redis-server, haproxy, curl (apt), and `make build`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

starting=false
die() {
  echo "cluster: $*" >&2
  if $starting; then echo "cluster: what did start still runs: \`$0 stop\` stops it" >&2; fi
  exit 1
}
say() { echo "cluster: $*"; }

# An absolute path: $1 if set (relative to the current directory), else the default $2 (relative to the repository).
abspath() {
  local given=$1 default=$2 p
  if [ -n "$given" ]; then p=$given; else p=$ROOT/$default; fi
  case $p in
    /*) ;;
    *) p=$PWD/$p ;;
  esac
  echo "$p"
}

CMD=${1:-start}
RESTART_NODE=
case $CMD in
  start | stop | status | env) ;;
  restart)
    RESTART_NODE=${2:-}
    [[ $RESTART_NODE =~ ^[a-z]$ ]] || {
      echo "usage: $0 restart NODE   (a node id: a, b, …)" >&2
      exit 2
    }
    ;;
  -h | --help | help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [start|stop|status|env|restart NODE]" >&2
    exit 2
    ;;
esac

D=$(abspath "${CLUSTER_DIR:-}" data/cluster)
BIN=$(abspath "${TERMROOM_BIN:-}" target/release/termroom)
SITE=$(abspath "${TERMROOM_SITE_ROOT:-}" target/site)
cd "$ROOT"

PGBIN=/usr/lib/postgresql/15/bin
PGROOT=$D/pg
PGDATA=$PGROOT/data
STATE=$D/cluster.env
KEY=$D/secret.key
PASSWORD_FILE=$D/backend.password
RECORDINGS=$D/recordings

as_root=false
if [ "$(id -u)" -eq 0 ]; then as_root=true; fi
if $as_root; then PGSUPER=postgres; else PGSUPER=$(id -un); fi

# Ports: those of the running cluster (cluster.env) unless starting afresh.
LB_PORT=${CLUSTER_PORT:-3100}
PG_PORT=${CLUSTER_PG_PORT:-55432}
REDIS_PORT=${CLUSTER_REDIS_PORT:-56379}
NODE_PORTS=${CLUSTER_NODE_PORTS:-3101 3102}
DRAIN_SECS=${CLUSTER_DRAIN_SECS:-120}
load_state() {
  # shellcheck disable=SC1090
  [ -f "$STATE" ] && . "$STATE"
  return 0
}
save_state() {
  cat >"$STATE" <<EOF
LB_PORT=$LB_PORT
PG_PORT=$PG_PORT
REDIS_PORT=$REDIS_PORT
NODE_PORTS="$NODE_PORTS"
DRAIN_SECS=$DRAIN_SECS
EOF
}

# Node ids a, b, c, … and their ports.
IDS=()
PORTS=()
set_nodes() {
  local letters=(a b c d e f g h i j k l m n o p q r s t u v w x y z) i=0 port
  IDS=()
  PORTS=()
  for port in $NODE_PORTS; do
    [[ $port =~ ^[0-9]+$ ]] || die "CLUSTER_NODE_PORTS: $port is not a port"
    IDS+=("${letters[$i]}")
    PORTS+=("$port")
    i=$((i + 1))
  done
  [ "${#IDS[@]}" -ge 1 ] || die "CLUSTER_NODE_PORTS names no port"
}

lb_url() { echo "http://127.0.0.1:$LB_PORT"; }
password() { cat "$PASSWORD_FILE"; }
db_url() { echo "postgres://termroom:$(password)@127.0.0.1:$PG_PORT/termroom"; }
broker_url() { echo "redis://:$(password)@127.0.0.1:$REDIS_PORT"; }

# ---------------------------------------------------------------- processes

# The pid in pid file $1 if that process runs and its command line holds $2.
running_pid() {
  local file=$1 mark=$2 pid
  [ -f "$file" ] || return 1
  pid=$(head -n 1 "$file" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$mark" || return 1
  echo "$pid"
}

# Ends process $2 (named $1): SIGTERM, then SIGKILL after $3 seconds.
end_process() {
  local name=$1 pid=$2 wait=${3:-15} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < wait * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "$name (pid $pid) did not stop within ${wait}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# Stops node $1 (pid $2) at once: a node with live terminals drains on the
# first SIGTERM, so a second one closes them (and a clean stop frees its
# node id at once); SIGKILL if it is still there after 20 s.
stop_node_now() {
  local id=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  end_process "node $id" "$pid" 20
}

# Whether something listens on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_mark() { echo "--node-id $1"; }
node_running() { running_pid "$D/node-$1.pid" "$(node_mark "$1")"; }
redis_running() { running_pid "$D/redis.pid" redis-server; }
haproxy_running() { running_pid "$D/haproxy.pid" "$D/haproxy.cfg"; }

# Runs a Postgres tool, as `postgres` when we are root, from $PGROOT.
pg() {
  if $as_root; then
    (cd "$PGROOT" && runuser -u postgres -- "$@")
  else
    (cd "$PGROOT" && "$@")
  fi
}
pg_running() { [ -f "$PGDATA/PG_VERSION" ] && pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
psql_super() { pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGROOT" -p "$PG_PORT" -U "$PGSUPER" -d postgres "$@"; }

# ---------------------------------------------------------------- start

check_tools() {
  local missing=()
  for tool in initdb pg_ctl pg_isready psql; do
    [ -x "$PGBIN/$tool" ] || missing+=("$PGBIN/$tool (apt-get install postgresql-15)")
  done
  command -v redis-server >/dev/null || missing+=("redis-server (apt-get install redis-server)")
  command -v redis-cli >/dev/null || missing+=("redis-cli (apt-get install redis-tools)")
  command -v haproxy >/dev/null || missing+=("haproxy (apt-get install haproxy)")
  command -v curl >/dev/null || missing+=("curl (apt-get install curl)")
  if [ ! -x "$BIN" ]; then
    missing+=("the termroom binary $BIN (build it with \`make build\`, or set TERMROOM_BIN)")
  elif ! "$BIN" serve --help 2>/dev/null | grep -q -- '--drain-secs'; then
    missing+=("a termroom binary that knows --node-id and --drain-secs: $BIN is older (rebuild it with \`make build\`)")
  fi
  [ -d "$SITE/pkg" ] || missing+=("the built site $SITE/pkg (build it with \`make build\`, or set TERMROOM_SITE_ROOT)")
  if $as_root && ! id postgres >/dev/null 2>&1; then
    missing+=("the 'postgres' user (running as root, Postgres must run as it: apt-get install postgresql-15)")
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "cluster: missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
  fi
}

# Random hex of $1 bytes.
random_hex() {
  if command -v openssl >/dev/null; then
    openssl rand -hex "$1"
  else
    od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
    echo
  fi
}

prepare_dir() {
  mkdir -p "$D"
  # As root, the `postgres` user must be able to pass through to pg/.
  if $as_root; then chmod 0711 "$D"; else chmod 0700 "$D"; fi
  mkdir -p "$RECORDINGS" "$D/cli"
  chmod 0700 "$RECORDINGS" "$D/cli"
  (
    umask 077
    [ -s "$KEY" ] || { random_hex 32 >"$KEY" && say "generated the secret key $KEY"; }
    [ -s "$PASSWORD_FILE" ] || random_hex 24 >"$PASSWORD_FILE"
  )
  chmod 0600 "$KEY" "$PASSWORD_FILE"
}

start_postgres() {
  mkdir -p "$PGROOT"
  if $as_root; then
    chown postgres: "$PGROOT"
    chmod 0700 "$PGROOT"
    runuser -u postgres -- test -w "$PGROOT" ||
      die "the postgres user cannot reach $PGROOT (a parent directory is closed to it); choose a CLUSTER_DIR it can reach"
  fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "initdb $PGDATA"
    pg "$PGBIN/initdb" -D "$PGDATA" -U "$PGSUPER" --auth-local=peer --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C >"$PGROOT/initdb.log" 2>&1 || {
      cat "$PGROOT/initdb.log" >&2
      die "initdb failed (log above)"
    }
    pg sh -c "cat >>'$PGDATA/postgresql.conf'" <<EOF

# scripts/cluster.sh: a local demo cluster (the port is given at start).
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PGROOT'
EOF
  fi
  if pg_running; then
    say "postgres already running ($PGDATA)"
  else
    port_busy "$PG_PORT" && die "port $PG_PORT (CLUSTER_PG_PORT, Postgres) is in use by another program"
    say "starting postgres on 127.0.0.1:$PG_PORT"
    pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGROOT/postgres.log" -o "-p $PG_PORT" -w -t 30 start >/dev/null || {
      tail -n 20 "$PGROOT/postgres.log" >&2 2>/dev/null
      die "postgres did not start (log: $PGROOT/postgres.log)"
    }
  fi
  pg "$PGBIN/pg_isready" -q -h "$PGROOT" -p "$PG_PORT" ||
    die "postgres of $PGDATA runs but does not answer on port $PG_PORT (started with another CLUSTER_PG_PORT? \`$0 stop\` first)"
  # The role and the database, once.
  if [ "$(psql_super -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'termroom'")" != 1 ]; then
    printf "CREATE ROLE termroom LOGIN PASSWORD '%s';\n" "$(password)" | psql_super >/dev/null ||
      die "creating the role termroom failed"
  fi
  if [ "$(psql_super -tAc "SELECT 1 FROM pg_database WHERE datname = 'termroom'")" != 1 ]; then
    psql_super -c 'CREATE DATABASE termroom OWNER termroom' >/dev/null ||
      die "creating the database termroom failed"
  fi
}

start_redis() {
  local pid
  if pid=$(redis_running); then
    say "redis already running (pid $pid)"
    return 0
  fi
  port_busy "$REDIS_PORT" && die "port $REDIS_PORT (CLUSTER_REDIS_PORT, Redis) is in use by another program"
  (
    umask 077
    cat >"$D/redis.conf" <<EOF
# scripts/cluster.sh: the broker of the demo cluster; nothing is persisted.
bind 127.0.0.1
port $REDIS_PORT
requirepass $(password)
save ""
appendonly no
daemonize yes
pidfile $D/redis.pid
logfile $D/redis.log
dir $D
EOF
  )
  say "starting redis on 127.0.0.1:$REDIS_PORT"
  rm -f "$D/redis.pid"
  redis-server "$D/redis.conf" </dev/null >/dev/null
  local i
  for ((i = 0; i < 100; i++)); do
    [ "$(REDISCLI_AUTH=$(password) redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  tail -n 20 "$D/redis.log" >&2 2>/dev/null
  die "redis did not answer on 127.0.0.1:$REDIS_PORT within 10 s (log: $D/redis.log)"
}

ADMIN_PASSWORD=

# Starts node $1 on port $2 and waits until it answers.
start_node() {
  local id=$1 port=$2 log=$D/node-$1.log pid offset code i attempt
  if pid=$(node_running "$id"); then
    say "node $id already running (pid $pid)"
    return 0
  fi
  port_busy "$port" && die "port $port (node $id, CLUSTER_NODE_PORTS) is in use by another program"
  mkdir -p -m 0700 "$D/node-$id"
  for attempt in 1 2 3 4 5; do
    offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
    echo "=== scripts/cluster.sh: node $id starting $(date -u +%FT%TZ)" >>"$log"
    say "starting node $id on 127.0.0.1:$port"
    (
      exec env TERMROOM_DATABASE_URL="$(db_url)" TERMROOM_BROKER="$(broker_url)" \
        LEPTOS_SITE_ROOT="$SITE" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_OUTPUT_NAME=termroom \
        RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 \
        setsid "$BIN" serve --node-id "$id" --node-url "http://127.0.0.1:$port" \
        --addr "127.0.0.1:$port" --data-dir "$D/node-$id" --recordings-dir "$RECORDINGS" \
        --secret-key-file "$KEY" --local-target admins --trusted-proxy 127.0.0.1 \
        --drain-secs "$DRAIN_SECS"
    ) </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$D/node-$id.pid"
    # The debug build takes a while to start; the first start also migrates.
    for ((i = 0; i < 1200; i++)); do
      if ! kill -0 "$pid" 2>/dev/null; then
        break
      fi
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/login" 2>/dev/null || true)
      if [ -n "$code" ] && [ "$code" != 000 ] && [ "$code" -lt 500 ]; then
        local pw
        pw=$(tail -c +"$((offset + 1))" "$log" | sed -n 's/.*created the first account\. user: admin  password: \([^ ]*\).*/\1/p' | head -n 1)
        if [ -n "$pw" ]; then ADMIN_PASSWORD=$pw; fi
        return 0
      fi
      sleep 0.1
    done
    rm -f "$D/node-$id.pid"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      die "node $id did not answer on 127.0.0.1:$port within 120 s (log: $log)"
    fi
    # A node killed a moment ago holds its id until its heartbeat is 15 s old.
    if tail -c +"$((offset + 1))" "$log" | grep -q 'is in use by a running node' && [ "$attempt" -lt 5 ]; then
      say "node id $id is still held by a node that stopped without leaving; trying again in 5 s"
      sleep 5
      continue
    fi
    echo "cluster: node $id exited; its log (without backtrace frames):" >&2
    tail -c +"$((offset + 1))" "$log" |
      awk 'tolower($0) ~ /^stack backtrace:/ { bt = 1; next } bt && /^ +([0-9]+: |at )/ { next } { bt = 0; print }' |
      tail -n 30 >&2
    if tail -c +"$((offset + 1))" "$log" | grep -q 'previously applied but has been modified'; then
      echo "cluster: the database under $PGROOT was created by a build of termroom with other migrations;" >&2
      echo "cluster: to start over with an empty one: $0 stop && rm -rf $D" >&2
    fi
    die "node $id did not start (log: $log)"
  done
}

start_haproxy() {
  local pid
  if pid=$(haproxy_running); then
    say "haproxy already running (pid $pid)"
    return 0
  fi
  port_busy "$LB_PORT" && die "port $LB_PORT (CLUSTER_PORT, haproxy) is in use by another program"
  local i
  {
    cat <<EOF
# scripts/cluster.sh: round robin over the nodes, no stickiness (any node
# serves any request; terminal sockets are forwarded to their node).
global
    maxconn 4096
    log stdout format raw local0 info

defaults
    mode http
    log global
    # httplog without the query string (WebSocket tickets travel in it),
    # logged as soon as the response starts (WebSockets stay open for hours).
    log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq \"%HM %HP %HV\""
    option logasap
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    # WebSockets (chat, terminals) stay open for hours; the server pings them.
    timeout tunnel 1h
    timeout client-fin 10s

frontend termroom
    bind 127.0.0.1:$LB_PORT
    default_backend nodes

backend nodes
    balance roundrobin
    # A node whose database fails (or that stopped) is taken out of the
    # rotation within two checks, and back in at the first good one.
    option httpchk GET /healthz
    http-check expect status 200
    # Which node answered, for the curious (curl -sI $(lb_url)).
    http-response set-header X-Termroom-Node %[srv_name]
EOF
    for i in "${!IDS[@]}"; do
      echo "    server ${IDS[$i]} 127.0.0.1:${PORTS[$i]} check inter 2s fall 2 rise 1"
    done
  } >"$D/haproxy.cfg"
  haproxy -c -q -f "$D/haproxy.cfg" || die "haproxy refused $D/haproxy.cfg (above)"
  say "starting haproxy on 127.0.0.1:$LB_PORT"
  # A fresh log each start (haproxy drops O_APPEND from its stdout); the last one is kept.
  if [ -f "$D/haproxy.log" ]; then mv -f "$D/haproxy.log" "$D/haproxy.log.1"; fi
  (exec setsid haproxy -db -f "$D/haproxy.cfg") </dev/null >"$D/haproxy.log" 2>&1 &
  echo $! >"$D/haproxy.pid"
  local code
  for ((i = 0; i < 100; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$(lb_url)/login" 2>/dev/null || true)
    if [ -n "$code" ] && [ "$code" != 000 ] && [ "$code" -lt 500 ]; then
      return 0
    fi
    haproxy_running >/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$D/haproxy.log" >&2 2>/dev/null
  die "haproxy did not serve $(lb_url) within 10 s (log: $D/haproxy.log)"
}

something_runs() {
  local id
  pg_running && return 0
  redis_running >/dev/null && return 0
  haproxy_running >/dev/null && return 0
  for id in a b c d e f g h i j k l m n o p q r s t u v w x y z; do
    node_running "$id" >/dev/null && return 0
  done
  return 1
}

all_run() {
  local id
  pg_running || return 1
  redis_running >/dev/null || return 1
  haproxy_running >/dev/null || return 1
  for id in "${IDS[@]}"; do node_running "$id" >/dev/null || return 1; done
}

cmd_start() {
  if [ -d "$D" ] && something_runs; then
    load_state
    set_nodes
    if all_run; then
      say "already running: $(lb_url)"
      return 0
    fi
    say "partly running; starting the rest"
  else
    set_nodes
  fi
  check_tools
  starting=true
  prepare_dir
  save_state
  start_postgres
  start_redis
  local i
  # One after the other: the first start of a fresh database creates the schema and the first admin.
  for i in "${!IDS[@]}"; do start_node "${IDS[$i]}" "${PORTS[$i]}"; done
  start_haproxy
  echo
  echo "termroom cluster: $(lb_url)   (haproxy, round robin over ${#IDS[@]} nodes)"
  for i in "${!IDS[@]}"; do
    echo "  node ${IDS[$i]}: http://127.0.0.1:${PORTS[$i]}   log $D/node-${IDS[$i]}.log"
  done
  echo "  stop: scripts/cluster.sh stop   status: scripts/cluster.sh status"
  if [ -n "$ADMIN_PASSWORD" ]; then
    cat <<EOF

==================================================================
  First start of this database: the account admin was created.
    url:      $(lb_url)
    user:     admin
    password: $ADMIN_PASSWORD
  It is shown this once. Change it on the account page (click your
  name at the top), or:
    eval "\$(scripts/cluster.sh env)"; $BIN user passwd admin
==================================================================
EOF
  fi
}

# ---------------------------------------------------------------- stop, status, env

cmd_stop() {
  [ -d "$D" ] || {
    say "nothing to stop ($D does not exist)"
    return 0
  }
  load_state
  local pid id f stopped=false
  if pid=$(haproxy_running); then
    say "stopping haproxy (pid $pid)"
    end_process haproxy "$pid" 5
    stopped=true
  fi
  rm -f "$D/haproxy.pid"
  for f in "$D"/node-*.pid; do
    [ -e "$f" ] || continue
    id=${f##*/node-}
    id=${id%.pid}
    if pid=$(node_running "$id"); then
      say "stopping node $id (pid $pid)"
      stop_node_now "$id" "$pid"
      stopped=true
    fi
    rm -f "$f"
  done
  if pid=$(redis_running); then
    say "stopping redis (pid $pid)"
    end_process redis "$pid" 10
    stopped=true
  fi
  rm -f "$D/redis.pid"
  if pg_running; then
    say "stopping postgres"
    pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null ||
      die "postgres did not stop (log: $PGROOT/postgres.log)"
    stopped=true
  fi
  $stopped && say "stopped" || say "nothing was running"
}

cmd_status() {
  [ -d "$D" ] || {
    say "not started ($D does not exist)"
    return 3
  }
  load_state
  set_nodes
  local pid id i up=0 total=0 code node
  line() { printf '  %-9s %-8s %s\n' "$1" "$2" "$3"; }
  echo "termroom cluster under $D"
  total=$((total + 1))
  if pg_running; then
    line postgres running "127.0.0.1:$PG_PORT  ($PGDATA)"
    up=$((up + 1))
  else line postgres stopped ""; fi
  total=$((total + 1))
  if pid=$(redis_running); then
    line redis running "127.0.0.1:$REDIS_PORT  pid $pid"
    up=$((up + 1))
  else line redis stopped ""; fi
  for i in "${!IDS[@]}"; do
    id=${IDS[$i]}
    total=$((total + 1))
    if pid=$(node_running "$id"); then
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:${PORTS[$i]}/login" 2>/dev/null || true)
      line "node $id" running "http://127.0.0.1:${PORTS[$i]}  pid $pid  GET /login: ${code:-none}"
      up=$((up + 1))
    else line "node $id" stopped "http://127.0.0.1:${PORTS[$i]}"; fi
  done
  total=$((total + 1))
  if pid=$(haproxy_running); then
    line haproxy running "$(lb_url)  pid $pid"
    up=$((up + 1))
  else line haproxy stopped "$(lb_url)"; fi
  if pg_running && [ -s "$PASSWORD_FILE" ]; then
    echo "nodes table (heartbeat every 5 s; dead after 15 s):"
    PGPASSWORD=$(password) pg "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U termroom -d termroom -P footer=off \
      -c "SELECT id, url, extract(epoch from now())::bigint - heartbeat_at AS heartbeat_secs_ago FROM nodes ORDER BY id" 2>&1 |
      sed '/^$/d; s/^/  /' || true
  fi
  if haproxy_running >/dev/null; then
    local seen=()
    for ((i = 0; i < ${#IDS[@]} * 2; i++)); do
      node=$(curl -s -o /dev/null -D - --max-time 2 "$(lb_url)/login" 2>/dev/null | tr -d '\r' | sed -n 's/^[Xx]-[Tt]ermroom-[Nn]ode: //p')
      seen+=("${node:-?}")
    done
    echo "through $(lb_url), ${#seen[@]} requests were answered by nodes: ${seen[*]}"
  fi
  if [ "$up" -eq "$total" ]; then return 0; fi
  [ "$up" -eq 0 ] && return 3
  return 1
}

# ---------------------------------------------------------------- restart

cmd_restart() {
  [ -d "$D" ] || die "no cluster under $D: run \`$0 start\` first"
  load_state
  set_nodes
  local id=$RESTART_NODE port='' i pid offset health last='' deadline node log
  for i in "${!IDS[@]}"; do
    if [ "${IDS[$i]}" = "$id" ]; then port=${PORTS[$i]}; fi
  done
  [ -n "$port" ] || die "this cluster has no node $id (its nodes: ${IDS[*]})"
  pid=$(node_running "$id") || die "node $id is not running (\`$0 start\` starts it)"
  haproxy_running >/dev/null || die "haproxy is not running, so nothing would send new requests elsewhere meanwhile (\`$0 start\`)"
  check_tools
  log=$D/node-$id.log
  offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
  say "draining node $id (pid $pid): new terminals open on the other nodes; its live ones may go on for up to ${DRAIN_SECS}s"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + DRAIN_SECS + 30))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    # `draining a: terminal sessions left: K`, said again when K changes.
    health=$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz" 2>/dev/null || true)
    if [[ $health == draining* ]] && [ "$health" != "$last" ]; then
      say "node $id draining: ${health#"draining $id: "}"
      last=$health
    fi
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "node $id (pid $pid) still runs $((DRAIN_SECS + 30))s after SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  # What the node said about its stop (why, and what it closed).
  tail -c +"$((offset + 1))" "$log" | sed -n "s/^termroom: /node $id: /p"
  rm -f "$D/node-$id.pid"
  starting=true
  start_node "$id" "$port"
  # haproxy checks every 2 s and takes a node back at its first good check.
  deadline=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$deadline" ]; do
    node=$(curl -s -o /dev/null -D - --max-time 2 "$(lb_url)/login" 2>/dev/null | tr -d '\r' | sed -n 's/^[Xx]-[Tt]ermroom-[Nn]ode: //p')
    if [ "$node" = "$id" ]; then
      say "node $id is back: $(lb_url) sends it requests again"
      return 0
    fi
    sleep 0.2
  done
  die "node $id runs again, but haproxy sent it no request within 30 s (log: $D/haproxy.log)"
}

cmd_env() {
  [ -s "$PASSWORD_FILE" ] || die "no cluster under $D yet: run \`$0 start\` first"
  load_state
  printf 'export TERMROOM_DATABASE_URL=%q\n' "$(db_url)"
  printf 'export TERMROOM_BROKER=%q\n' "$(broker_url)"
  printf 'export TERMROOM_SECRET_KEY_FILE=%q\n' "$KEY"
  printf 'export TERMROOM_RECORDINGS_DIR=%q\n' "$RECORDINGS"
  printf 'export TERMROOM_DATA_DIR=%q\n' "$D/cli"
}

case $CMD in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  restart) cmd_restart ;;
esac
