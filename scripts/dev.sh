#!/usr/bin/env bash
# Runs the server in dev mode with the demo app: well-known secret and API key (printed),
# embedded state, demo page at http://127.0.0.1:8080. Extra arguments go to `roomcast`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export ROOMCAST_DEV=1
exec cargo run --release --locked -p roomcast-server --bin roomcast -- --static-dir www "$@"
