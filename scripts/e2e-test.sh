#!/usr/bin/env bash
# End-to-end tests of the demo web app (tests/e2e/*.test.mjs): playwright-core drives
# Debian's headless Chromium against real roomcast servers (debug build, dev mode, the
# demo feed) that the tests start, restart and stop themselves. package.test.mjs checks
# the npm package (the bundler build) in Node the way a bundler would load it. Set ROOMCAST_SCREENSHOTS
# to a directory to save a screenshot of each main view there (scripts/screenshots.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked -p roomcast-server --bin roomcast
# The page loads the SDK's web build from www/pkg; package.test.mjs imports the bundler build.
if [ ! -s www/pkg/roomcast_client_bg.wasm ] || [ ! -s client-wasm/pkg/bundler/roomcast_client_bg.wasm ]; then
  scripts/build-sdk.sh > /dev/null
fi
(cd tests/e2e && npm ci --no-audit --no-fund --silent)
cd tests/e2e
# The two flags let package.test.mjs import the npm package as a bundler would (.wasm as
# an ES module) and give Node the browser's WebSocket; the browser tests do not need them.
exec node --experimental-wasm-modules --experimental-websocket --no-warnings=ExperimentalWarning \
  --test --test-concurrency=1 --test-reporter=spec ./*.test.mjs
