#!/usr/bin/env bash
# Runs the SDK's browser tests (client-wasm/tests/browser.rs) in headless Chromium through
# wasm-bindgen-test-runner, against a real roomcast server started here on a free port
# (dev mode, in-memory store, fast heartbeats, at most 3 connections per user).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked -p roomcast-server --bin roomcast
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=target/browser-test-server.log
ROOMCAST_DEV=1 ROOMCAST_BIND="127.0.0.1:$port" ROOMCAST_STORE=sqlite::memory: \
  ROOMCAST_HEARTBEAT_INTERVAL_MS=300 ROOMCAST_HEARTBEAT_TIMEOUT_MS=500 \
  ROOMCAST_MAX_CONNECTIONS_PER_USER=3 ROOMCAST_LOG=warn \
  target/debug/roomcast > "$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null 2>&1; then break; fi
  sleep 0.1
done

export ROOMCAST_TEST_URL="ws://127.0.0.1:$port/ws"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export WASM_BINDGEN_TEST_TIMEOUT=60
if ! cargo test --locked -p roomcast-client --target wasm32-unknown-unknown --test browser; then
  echo "== server log ($log)"; cat "$log"; exit 1
fi
