#!/usr/bin/env bash
# Runs the Autobahn WebSocket conformance cases against termroom's /ws/echo
# and diffs the outcome with server/tests/autobahn/expected.txt
# (scripts/conformance.py does the work; scripts/install-tools.sh test
# installs its runner, kosoku, into a venv outside the repository).
# Usage: scripts/conformance.sh [--update] [--report DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${TERMROOM_TOOLS_DIR:-$HOME/.cache/termroom}/conformance-venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "conformance: $VENV is missing; run scripts/install-tools.sh test" >&2
  exit 1
fi
cargo build -p server --bin termroom
exec "$VENV/bin/python" scripts/conformance.py \
  "${CARGO_TARGET_DIR:-target}/debug/termroom" server/tests/autobahn/expected.txt "$@"
