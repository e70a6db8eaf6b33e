#!/usr/bin/env bash
# Runs the SDK's browser tests (client-wasm/tests/browser.rs) in headless Chromium through
# wasm-pack test (wasm-bindgen-test-runner), against a real roomcast server on a free port
# (dev mode, a SQLite file in a temp dir, fast heartbeats, at most 3 connections per user).
# The tests steer the server through scripts/browser-test-control.py: restart it, call its API.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked -p roomcast-server --bin roomcast
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
control_port=$(free_port)
work=$(mktemp -d)
python3 scripts/browser-test-control.py target/debug/roomcast "$port" "$control_port" "$work" > "$work/control.log" 2>&1 &
control=$!
trap 'kill "$control" 2>/dev/null || true; wait "$control" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 200); do
  grep -q ready "$work/control.log" 2>/dev/null && break
  kill -0 "$control" 2>/dev/null || { cat "$work/control.log"; exit 1; }
  sleep 0.1
done

export ROOMCAST_TEST_URL="ws://127.0.0.1:$port/ws"
export ROOMCAST_TEST_CONTROL="http://127.0.0.1:$control_port"
export WASM_BINDGEN_TEST_TIMEOUT=90
# wasm-pack runs the tests with wasm-bindgen-test-runner and Debian's chromedriver (both
# installed by setup.sh; --mode no-install never downloads); client-wasm/webdriver.json
# gives Chromium its flags.
if ! wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)" --mode no-install \
    client-wasm --locked --test browser --test restart; then
  echo "== control log"; cat "$work/control.log"
  echo "== server log"; cat "$work/server.log" 2>/dev/null || true
  exit 1
fi
