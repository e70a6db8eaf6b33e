#!/usr/bin/env bash
# End-to-end tests of the demo web app (tests/e2e/*.test.mjs): playwright-core drives
# Debian's headless Chromium against real roomcast servers (debug build, dev mode, the
# demo feed) that the tests start, restart and stop themselves. Set ROOMCAST_SCREENSHOTS
# to a directory to save a screenshot of each main view there (scripts/screenshots.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked -p roomcast-server --bin roomcast
[ -s www/pkg/roomcast_client_bg.wasm ] || scripts/build-sdk.sh > /dev/null
(cd tests/e2e && npm ci --no-audit --no-fund --silent)
cd tests/e2e
exec node --test --test-concurrency=1 --test-reporter=spec ./*.test.mjs
