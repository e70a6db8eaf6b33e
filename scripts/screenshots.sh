#!/usr/bin/env bash
# Refreshes docs/screenshots/*.png (shown in the README) by running the e2e tests, which
# save a screenshot of each main view when ROOMCAST_SCREENSHOTS is set.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOMCAST_SCREENSHOTS="$PWD/docs/screenshots" exec scripts/e2e-test.sh
