#!/usr/bin/env bash
# Runs the server in dev mode with the demo app at http://127.0.0.1:8080: well-known secret
# and API key (printed), embedded SQLite store, the demo feed (stock ticks and game
# scores), stats_update pushed to admins every second, and the browser SDK built into
# www/pkg for the page. Extra arguments go to `roomcast` (e.g. --bind 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build-sdk.sh
export ROOMCAST_DEV=1
exec cargo run --release --locked -p roomcast-server --bin roomcast -- --static-dir www --demo --stats-interval-ms 1000 "$@"
