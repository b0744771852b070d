#!/usr/bin/env bash
# Installs the build tools termroom needs, skipping what is already there.
# Usage: scripts/install-tools.sh [build|test]
#   build: wasm32 target, cargo-leptos, wasm-bindgen-cli, npm packages
#   test:  everything for build, plus chromium, openssh-server, postgresql,
#          redis-server and haproxy (apt), the
#          asciinema 3.x CLI (crates.io: the recording tests' independent
#          reader), and the Autobahn conformance runner kosoku (PyPI) in a venv under
#          ${TERMROOM_TOOLS_DIR:-~/.cache/termroom} (outside the clone: it survives fresh clones)
set -euo pipefail

MODE="${1:-build}"
CARGO_LEPTOS_VERSION="0.3.10"
# Must equal the wasm-bindgen crate version in Cargo.lock (pinned in Cargo.toml).
WASM_BINDGEN_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p' | head -n1)"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

log() { printf '==> %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(cargo-leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
  log "installing cargo-leptos $CARGO_LEPTOS_VERSION (once per machine, ~15 min)"
  cargo install cargo-leptos --locked --version "=$CARGO_LEPTOS_VERSION" --features no_downloads
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (once per machine, ~5 min)"
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --locked \
    || cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force
fi

# npm packages (xterm.js, asciinema-player, binaryen, playwright-core), pinned by package-lock.json.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund
fi

if [ "$MODE" = "test" ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  # Several nodes: the tests start their own Postgres, Redis and load balancer.
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v haproxy >/dev/null || missing+=(haproxy)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

if [ "$MODE" = "test" ]; then
  ASCIINEMA_VERSION="3.2.0"
  if [ "$(asciinema --version 2>/dev/null | awk '{print $2}')" != "$ASCIINEMA_VERSION" ]; then
    log "installing asciinema $ASCIINEMA_VERSION (reads recordings back in tests; once per machine, ~10 min)"
    cargo install asciinema --locked --version "=$ASCIINEMA_VERSION"
  fi
fi

if [ "$MODE" = "test" ]; then
  KOSOKU_VERSION="0.1.0"
  VENV="${TERMROOM_TOOLS_DIR:-$HOME/.cache/termroom}/conformance-venv"
  if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kosoku') != '$KOSOKU_VERSION')" 2>/dev/null; then
    # kosoku needs Python >= 3.10 and the venv module.
    if ! python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      log "installing python3 and python3-venv from apt"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q
      apt-get install -y -q --no-install-recommends python3 python3-venv
    fi
    log "installing kosoku $KOSOKU_VERSION (Autobahn conformance runner) into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "kosoku==$KOSOKU_VERSION"
  fi
fi
