#!/usr/bin/env bash
# Browser benchmark, termroom vs WeTTY 3.2.0 (end2end/bench/browser.mjs).
# Installs the benchmark's own npm packages (WeTTY, pinned by
# end2end/bench/package-lock.json) when the lock file changed, then runs it.
# Environment: TERMROOM_BIN, TERMROOM_SITE_ROOT and the BENCH_* variables
# documented at the top of end2end/bench/browser.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=end2end/bench
stamp=$dir/node_modules/.termroom-installed-lock
if ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
  (cd "$dir" && npm ci --no-audit --no-fund)
  cp "$dir/package-lock.json" "$stamp"
fi
exec node "$dir/browser.mjs" "$@"
