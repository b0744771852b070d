#!/usr/bin/env bash
# Installs the build tools termroom needs, skipping what is already there.
# Usage: scripts/install-tools.sh [build|test]
#   build: wasm32 target, cargo-leptos, wasm-bindgen-cli, npm packages
#   test:  everything for build, plus chromium, openssh-server (apt)
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
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi
