#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL 15 cluster, for tests:
# initdb in a temp directory, start it on a free port of 127.0.0.1 (trust
# auth, no fsync: tests only), create the superuser role `termroom`, run the
# command with TERMROOM_TEST_POSTGRES=postgres://termroom@127.0.0.1:PORT/postgres
# exported (tests create their own databases there), then stop the cluster and
# delete its directory, also on failure or Ctrl-C. Exits with the command's
# status. If TERMROOM_TEST_POSTGRES is already set, the command just runs
# against that server.
# Usage: scripts/with-postgres.sh CMD [ARGS...]
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

if [ -n "${TERMROOM_TEST_POSTGRES:-}" ]; then
  exec "$@"
fi

PGBIN=/usr/lib/postgresql/15/bin
for tool in initdb pg_ctl pg_isready psql; do
  if [ ! -x "$PGBIN/$tool" ]; then
    echo "with-postgres: $PGBIN/$tool not found; install postgresql (apt) — make tools-test does" >&2
    exit 1
  fi
done

# Postgres refuses to run as root: as root, run its tools as `postgres`.
as_root=false
if [ "$(id -u)" -eq 0 ]; then
  as_root=true
  if ! id postgres >/dev/null 2>&1; then
    echo "with-postgres: running as root but there is no 'postgres' user; install postgresql (apt) — make tools-test does" >&2
    exit 1
  fi
fi

PGTMP=$(mktemp -d "${TMPDIR:-/tmp}/termroom-pg.XXXXXX")
DATA="$PGTMP/data"
LOG="$PGTMP/postgres.log"
started=false

# Runs a Postgres tool, as `postgres` when we are root, from the temp dir
# (the postgres user may not be able to enter the current directory).
pg() {
  if $as_root; then
    (cd "$PGTMP" && runuser -u postgres -- "$@")
  else
    (cd "$PGTMP" && "$@")
  fi
}

cleanup() {
  set +e
  if $started; then
    # Interrupted just after the start: let the postmaster write its pid file.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      [ -f "$DATA/postmaster.pid" ] && break
      pgrep -f "$DATA" >/dev/null 2>&1 || break
      sleep 0.2
    done
    pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
    # If pg_ctl could not stop it, end the postmaster we started, by its pid.
    if [ -f "$DATA/postmaster.pid" ]; then
      pid=$(head -n 1 "$DATA/postmaster.pid")
      [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    fi
  fi
  rm -rf "$PGTMP"
}
trap 'status=$?; cleanup; exit $status' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if $as_root; then
  chown postgres: "$PGTMP"
fi

# A free port on 127.0.0.1.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' && return
  fi
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "with-postgres: found no free port" >&2
  return 1
}
PORT=$(free_port)

pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync >"$PGTMP/initdb.log" 2>&1 || {
  echo "with-postgres: initdb failed:" >&2
  cat "$PGTMP/initdb.log" >&2
  exit 1
}
cat >>"$DATA/postgresql.conf" <<EOF

# scripts/with-postgres.sh: a throwaway cluster for tests.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PGTMP'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
EOF

started=true
pg "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -W start >/dev/null

deadline=$((SECONDS + 30))
until pg "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres; do
  # Give up at the deadline, or at once if the server failed (a FATAL other
  # than the ones pg_isready itself causes while the server starts).
  if [ "$SECONDS" -ge "$deadline" ] ||
    grep -E '(FATAL|PANIC):' "$LOG" 2>/dev/null | grep -qvE 'starting up|not yet accepting'; then
    echo "with-postgres: PostgreSQL on 127.0.0.1:$PORT did not come up within 30 s; its log:" >&2
    cat "$LOG" >&2 2>/dev/null
    exit 1
  fi
  sleep 0.1
done

pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGTMP" -p "$PORT" -U postgres -d postgres \
  -c 'CREATE ROLE termroom SUPERUSER LOGIN' >/dev/null

export TERMROOM_TEST_POSTGRES="postgres://termroom@127.0.0.1:$PORT/postgres"
set +e
"$@"
status=$?
set -e
exit "$status"
