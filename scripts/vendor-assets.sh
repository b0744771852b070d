#!/usr/bin/env bash
# Copies the browser libraries termroom uses from node_modules (pinned in
# package-lock.json) into public/vendor, which cargo-leptos copies into the site.
set -euo pipefail
[ -d node_modules/@xterm/xterm ] || npm ci --no-audit --no-fund
out=public/vendor
mkdir -p "$out/xterm" "$out/asciinema-player"
cp -u node_modules/@xterm/xterm/lib/xterm.mjs node_modules/@xterm/xterm/css/xterm.css "$out/xterm/"
for addon in fit webgl search web-links unicode11; do
  cp -u "node_modules/@xterm/addon-$addon/lib/addon-$addon.mjs" "$out/xterm/"
done
cp -u node_modules/asciinema-player/dist/bundle/asciinema-player.min.js \
      node_modules/asciinema-player/dist/bundle/asciinema-player.css "$out/asciinema-player/"
