#!/usr/bin/env bash
# Runs a two-node cluster of the demo on one machine (docs/cluster.md): nodes dev-a at
# http://127.0.0.1:8080 and dev-b at http://127.0.0.1:8081, both in dev mode with the demo
# app and the demo feed on (it runs on the leader, dev-a while it lives, and reaches both
# through the bus; kill dev-a and dev-b takes it over), sharing the local Redis (the bus)
# and PostgreSQL (the store, in schema roomcast_dev, created first when psql is there).
# Builds once (debug), runs both in the background, prints their URLs, and stops both on
# Ctrl-C.
#   ROOMCAST_BROKER  Redis URL      [redis://127.0.0.1:6379/0]
#   ROOMCAST_STORE   PostgreSQL URL [postgres://postgres@127.0.0.1:5432/test?options=-csearch_path=roomcast_dev]
#   ROOMCAST_SKIP_SDK=1  do not build the browser SDK into www/pkg when it is missing
# Extra arguments go to both `roomcast` processes.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'cluster-dev: %s\n' "$*"; }

broker=${ROOMCAST_BROKER:-redis://127.0.0.1:6379/0}
store=${ROOMCAST_STORE:-postgres://postgres@127.0.0.1:5432/test?options=-csearch_path=roomcast_dev}
nodes=("dev-a 127.0.0.1:8080" "dev-b 127.0.0.1:8081")

# The store migrates its schema at open, but the schema itself must exist.
schema=$(sed -n 's/.*search_path=\([A-Za-z0-9_]*\).*/\1/p' <<<"$store")
if [ -n "$schema" ] && command -v psql >/dev/null; then
  psql -q "${store%%\?*}" -c "CREATE SCHEMA IF NOT EXISTS $schema" \
    || say "could not create schema $schema (the nodes will say why the store fails)"
fi

cargo build --locked -p roomcast-server --bin roomcast
bin=${CARGO_TARGET_DIR:-target}/debug/roomcast
# The page loads the SDK's web build from www/pkg.
if [ ! -s www/pkg/roomcast_client_bg.wasm ] && [ "${ROOMCAST_SKIP_SDK:-}" != 1 ]; then
  scripts/build-sdk.sh > /dev/null
fi

pids=()
stop() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export ROOMCAST_DEV=1 ROOMCAST_BROKER="$broker" ROOMCAST_STORE="$store"
export ROOMCAST_REDIS_PREFIX=${ROOMCAST_REDIS_PREFIX:-roomcast-dev}
for node in "${nodes[@]}"; do
  read -r id bind <<<"$node"
  # The demo feed and stats_update are enabled on both, as in production: only the
  # leader (the live node with the smallest id) runs them. Each node's output is prefixed with its id.
  ROOMCAST_DEMO=1 ROOMCAST_NODE_ID=$id "$bin" --bind "$bind" --static-dir www --stats-interval-ms 1000 "$@" \
    > >(sed -u "s/^/[$id] /") 2>&1 &
  pids+=("$!")
done

# Up when both answer /healthz; a node that exits (Redis or PostgreSQL unreachable, port
# taken) stops the other.
for _ in $(seq 1 100); do
  up=0
  for i in "${!nodes[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || { say "${nodes[$i]%% *} exited"; exit 1; }
    read -r _ bind <<<"${nodes[$i]}"
    curl -fsS -o /dev/null "http://$bind/healthz" 2>/dev/null && up=$((up + 1))
  done
  [ "$up" -eq "${#nodes[@]}" ] && break
  sleep 0.2
done
say "two nodes on $broker (prefix $ROOMCAST_REDIS_PREFIX), store ${store%%\?*} (schema ${schema:-default}):"
for node in "${nodes[@]}"; do
  read -r id bind <<<"$node"
  say "  $id  http://$bind/"
done
say "open both, sign in as two users, chat across; Ctrl-C stops both"
wait -n "${pids[@]}" || true
say "a node exited"
