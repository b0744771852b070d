# termroom: `make run` builds and starts the server on its embedded default;
# `make test` installs what the tests need and runs every test.
SHELL := /bin/bash
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
export PATH := $(CARGO_BIN):$(CURDIR)/node_modules/.bin:$(PATH)
DATA_DIR ?= ./data
ADDR ?= 127.0.0.1:3000
# The same LEPTOS_* values cargo-leptos sets for a debug build: Leptos reads
# some at compile time, so cargo test and cargo leptos share build artifacts.
export LEPTOS_OUTPUT_NAME := termroom
export LEPTOS_SITE_ROOT := target/site
export LEPTOS_SITE_PKG_DIR := pkg
export LEPTOS_SITE_ADDR := 127.0.0.1:3000
export LEPTOS_RELOAD_PORT := 3001
export LEPTOS_LIB_DIR := frontend
export LEPTOS_BIN_DIR := server
export LEPTOS_JS_MINIFY := false
export LEPTOS_HASH_FILES := false

.PHONY: run build build-debug test tools tools-test vendor lint unit e2e wasm-size bench watch clean-data cluster cluster-stop

## run: build (release) and start termroom on $(ADDR) with data under $(DATA_DIR)
run: build
	./target/release/termroom serve --addr $(ADDR) --data-dir $(DATA_DIR)

## build: release artifacts (server binary + site) without starting anything
build: tools vendor
	cargo leptos build --release

## watch: development server with hot reload
watch: tools vendor
	cargo leptos watch

## test: every test (format, lint, unit, integration, wasm check, end-to-end, the Wasm size budget)
test: tools-test vendor lint unit e2e conformance wasm-size

tools:
	@scripts/install-tools.sh build

tools-test:
	@scripts/install-tools.sh test

## vendor: copy xterm.js and asciinema-player from node_modules into the site assets
vendor:
	@scripts/vendor-assets.sh

lint:
	cargo fmt --all -- --check
	cargo clippy -p server -p app --features app/ssr --all-targets -- -D warnings
	cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

## unit: unit and integration tests, on SQLite, then every suite again on a throwaway Postgres
unit:
	cargo test -p app --features ssr
	cargo test -p server
	scripts/with-postgres.sh cargo test -p server --lib --tests

build-debug: tools vendor
	cargo leptos build

e2e: build-debug
	node end2end/run.mjs
	node end2end/cluster.mjs

## cluster: a local demo of several nodes (Postgres, Redis, nodes a and b, haproxy on :3100); cluster-stop ends it
cluster: build tools-test
	scripts/cluster.sh start

cluster-stop:
	scripts/cluster.sh stop

## wasm-size: the release Wasm client, brotli-compressed as the server sends it, within its 400 KB budget
## (builds the release client into target/site, in place of the debug one e2e built)
wasm-size: tools vendor
	cargo leptos build --release --frontend-only
	node scripts/wasm-size.mjs target/site/pkg/termroom.wasm 400000

## conformance: Autobahn WebSocket cases against /ws/echo, diffed with server/tests/autobahn/expected.txt
conformance: tools-test
	scripts/conformance.sh

## bench: chat fan-out, login flood, session memory and terminal benchmarks (print numbers; see BENCHMARKS.md)
bench: build tools-test
	cargo build --release -p server --example chat-load --example login-flood --example session-memory
	ulimit -n 20000 && ./target/release/examples/chat-load --server-bin target/release/termroom
	ulimit -n 20000 && ./target/release/examples/chat-load --server-bin target/release/termroom --cluster
	./target/release/examples/login-flood --server-bin target/release/termroom
	./target/release/examples/session-memory --server-bin target/release/termroom
	cargo bench -p server --bench term_bench
	TERMROOM_BIN=target/release/termroom TERMROOM_SITE_ROOT=target/site scripts/bench-browser.sh
	node end2end/bench/recording-open.mjs
