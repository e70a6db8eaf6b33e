#!/usr/bin/env bash
# Side-by-side benchmark (issue 12): the same load-generator scenarios against Roomcast and
# the peers under tests/peers/ (Node `ws`, Socket.IO 4, two Socket.IO nodes on the Redis
# adapter, and a bare tokio-tungstenite broadcast server as the floor), interleaved
# (A B C D, A B C D, ...) so that a machine getting busier hurts every side alike, each
# run on a fresh server process. Writes the medians, the per-repetition ratios and the CPU
# each side used into docs/benchmarks.md between the bench.sh markers, and every run's raw
# JSON into target/bench/.
#
#   scripts/bench.sh                 # everything, 3 repetitions (about 15-20 min on 2 cores)
#   scripts/bench.sh --quick         # a short smoke of the whole pipeline (1 repetition)
#   scripts/bench.sh --reps 5 --only fanout-1k,idle-10k
#   scripts/bench.sh --list          # the scenarios
#
# Other options: --no-build (use the binaries as built), --no-docs (results file only),
# --docs FILE (write the section into FILE instead of docs/benchmarks.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
COMMAND="scripts/bench.sh${*:+ $*}"

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

QUICK=0 REPS="" ONLY="" BUILD=1 DOCS="docs/benchmarks.md" WRITE_DOCS=1 LIST=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS=${2:?--reps needs a number}; shift ;;
    --only) ONLY=${2:?--only needs scenario names}; shift ;;
    --no-build) BUILD=0 ;;
    --no-docs) WRITE_DOCS=0 ;;
    --docs) DOCS=${2:?--docs needs a file}; shift ;;
    --list) LIST=1 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
  shift
done
if [ -z "$REPS" ]; then REPS=3; [ "$QUICK" = 0 ] || REPS=1; fi
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive number"
# The servers get only the settings given here: none of the caller's ROOMCAST_* leak in.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^ROOMCAST_' || true)

# ---------------------------------------------------------------------------------------
# Scenarios: name | sides | loadgen arguments (full run) | loadgen arguments (--quick).
# A side is a server setup (start_side below). The loadgen gets --url/--target per side.
SCENARIOS=(
  "fanout-1k|roomcast node-ws socketio floor|fanout --subscribers 1000 --rate 200 --duration 10|fanout --subscribers 50 --rate 50 --duration 2"
  "fanout-5k|roomcast node-ws socketio floor|fanout --subscribers 5000 --rate 20 --duration 10 --concurrency 250|fanout --subscribers 100 --rate 20 --duration 2"
  "idle-10k|roomcast node-ws socketio floor|idle --connections 10000 --concurrency 200|idle --connections 300 --concurrency 100"
  "slow-consumer|roomcast node-ws socketio floor|slow-consumer --subscribers 50 --stalled 1 --rate 500 --duration 10 --payload 2000|slow-consumer --subscribers 10 --stalled 1 --rate 200 --duration 2 --payload 2000"
  "cluster-fanout|roomcast-cluster socketio-cluster|cluster-fanout --subscribers 1000 --rate 100 --duration 10|cluster-fanout --subscribers 50 --rate 20 --duration 2"
  "chat-1-room|roomcast roomcast-pg|chat --senders 20 --rooms 1 --messages 1000 --window 32|chat --senders 4 --rooms 1 --messages 100 --window 8"
  "chat-100-rooms|roomcast roomcast-pg|chat --senders 100 --rooms 100 --messages 200 --window 8|chat --senders 10 --rooms 10 --messages 50 --window 8"
)
if [ "$LIST" = 1 ]; then
  for s in "${SCENARIOS[@]}"; do IFS='|' read -r name sides args _ <<<"$s"; printf '%-16s %-40s loadgen %s\n' "$name" "$sides" "$args"; done
  exit 0
fi
if [ -n "$ONLY" ]; then
  for want in ${ONLY//,/ }; do
    printf '%s\n' "${SCENARIOS[@]}" | grep -q "^$want|" || die "no scenario $want (try --list)"
  done
fi
selected() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
needs() { # whether any selected scenario uses a side matching $1
  local s name sides
  for s in "${SCENARIOS[@]}"; do
    IFS='|' read -r name sides _ <<<"$s"
    selected "$name" && [[ " $sides " == *" $1"* ]] && return 0
  done
  return 1
}

# ---------------------------------------------------------------------------------------
# Tools and builds.
for tool in cargo python3 curl; do command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs what Roomcast needs)"; done
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release"
FLOOR_DIR=tests/peers/floor
FLOOR_BIN="$FLOOR_DIR/target/release/roomcast-peer-floor"
if [ "$BUILD" = 1 ]; then
  say "building roomcast and loadgen (release)"
  cargo build --release --locked -p roomcast-server -p roomcast-tests --bin roomcast --bin loadgen >&2
  if needs floor; then
    [ -f "$FLOOR_DIR/Cargo.toml" ] || die "$FLOOR_DIR/Cargo.toml is missing"
    say "building the floor peer (release)"
    CARGO_TARGET_DIR="$ROOT/$FLOOR_DIR/target" cargo build --release --locked --manifest-path "$FLOOR_DIR/Cargo.toml" >&2
  fi
fi
for dir in node-ws socketio; do
  needs "$dir" || continue
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then die "node and npm are needed for the $dir peer"; fi
  [ -f "tests/peers/$dir/package-lock.json" ] || die "tests/peers/$dir/package-lock.json is missing"
  if [ ! -d "tests/peers/$dir/node_modules" ] || [ "tests/peers/$dir/package-lock.json" -nt "tests/peers/$dir/node_modules" ]; then
    say "npm ci in tests/peers/$dir"
    (cd "tests/peers/$dir" && npm ci --no-audit --no-fund >&2)
  fi
done
if [ ! -x "$BIN/roomcast" ] || [ ! -x "$BIN/loadgen" ]; then die "no release roomcast/loadgen in $BIN (drop --no-build)"; fi
! needs floor || [ -x "$FLOOR_BIN" ] || die "no floor binary at $FLOOR_BIN (drop --no-build)"
if needs roomcast-pg || needs roomcast-cluster || needs socketio-cluster; then
  scripts/services.sh >&2
  command -v psql >/dev/null || die "psql is needed for the PostgreSQL runs"
  pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL is not up on 127.0.0.1:5432"
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || die "Redis is not up on 127.0.0.1:6379"
fi

# Ten thousand connections on each side of the socket need the hard file limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 10100 ] || ! selected idle-10k || say "warning: file limit $(ulimit -n): idle-10k needs ~10,050 descriptors per process"
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR="$TARGET_DIR/bench"
LOG_DIR="$OUT_DIR/logs-$STAMP"
RESULTS="$OUT_DIR/results-$STAMP.jsonl"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-bench.XXXXXX")
mkdir -p "$LOG_DIR"
: >"$RESULTS"

# ---------------------------------------------------------------------------------------
# Servers. start_side sets PIDS (to pass as --server-pid), URLS and TARGET.
SECRET="roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION" # the dev secret Roomcast runs with in dev mode
PG_BASE="postgres://postgres@127.0.0.1:5432/test"
STARTED=() SCHEMAS=() PREFIXES=() PIDS=() URLS=() TARGET="" RUN=0 STORE=""

cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
  for schema in "${SCHEMAS[@]}"; do psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; done
  for prefix in "${PREFIXES[@]}"; do
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "$prefix:*" 2>/dev/null | xargs -r redis-cli -h 127.0.0.1 -p 6379 del >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# launch LOG PORT CMD...: starts a server, waits until its port accepts (30 s at most).
launch() {
  local log=$1 port=$2 pid; shift 2
  port_open "$port" && die "port $port is already in use: stop what listens there"
  "$@" >"$log" 2>&1 &
  pid=$!
  STARTED+=("$pid") PIDS+=("$pid")
  for _ in $(seq 1 300); do
    port_open "$port" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "server exited at start: $*"; }
    sleep 0.1
  done
  tail -n 20 "$log" >&2
  die "server did not listen on $port within 30 s: $*"
}

# Limits out of the way: every subscriber is its own user, but the publisher sends far
# more than a person would, and the rate limit is per connection.
roomcast_env=(ROOMCAST_DEV=1 ROOMCAST_LOG=warn ROOMCAST_JWT_SECRET="$SECRET"
  ROOMCAST_MAX_CONNECTIONS_PER_USER=100000
  ROOMCAST_RATE_LIMIT_PER_SEC=1000000 ROOMCAST_RATE_LIMIT_BURST=1000000)

# new_schema: a fresh PostgreSQL schema for this run, its store URL in STORE (not printed
# for a $(...): the schema must be remembered in this shell, for the cleanup).
new_schema() {
  local schema="rc_bench_$$_$RUN"
  psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA $schema" >/dev/null
  SCHEMAS+=("$schema")
  STORE="$PG_BASE?options=-csearch_path=$schema"
}

start_side() {
  local side=$1 log=$2
  PIDS=() URLS=() RUN=$((RUN + 1))
  case "$side" in
    roomcast)
      TARGET=roomcast URLS=(ws://127.0.0.1:18080/ws)
      launch "$log" 18080 env "${roomcast_env[@]}" ROOMCAST_BIND=127.0.0.1:18080 \
        ROOMCAST_STORE="sqlite://$WORK/run-$RUN.db" "$BIN/roomcast" ;;
    roomcast-pg)
      TARGET=roomcast URLS=(ws://127.0.0.1:18080/ws)
      new_schema
      launch "$log" 18080 env "${roomcast_env[@]}" ROOMCAST_BIND=127.0.0.1:18080 \
        ROOMCAST_STORE="$STORE" "$BIN/roomcast" ;;
    roomcast-cluster)
      local prefix="rc-bench-$$-$RUN" node port
      new_schema
      PREFIXES+=("$prefix")
      TARGET=roomcast URLS=(ws://127.0.0.1:18081/ws ws://127.0.0.1:18082/ws)
      for node in a:18081 b:18082; do
        port=${node#*:}
        launch "$log.${node%:*}" "$port" env "${roomcast_env[@]}" ROOMCAST_BIND="127.0.0.1:$port" \
          ROOMCAST_STORE="$STORE" ROOMCAST_BROKER=redis://127.0.0.1:6379/0 \
          ROOMCAST_REDIS_PREFIX="$prefix" ROOMCAST_NODE_ID="bench-${node%:*}" "$BIN/roomcast"
      done ;;
    node-ws)
      TARGET=json URLS=(ws://127.0.0.1:9001/ws)
      launch "$log" 9001 env PORT=9001 JWT_SECRET="$SECRET" node tests/peers/node-ws/server.js ;;
    floor)
      TARGET=json URLS=(ws://127.0.0.1:9002/ws)
      launch "$log" 9002 env PORT=9002 JWT_SECRET="$SECRET" "$FLOOR_BIN" ;;
    socketio)
      TARGET=socketio URLS=(ws://127.0.0.1:9003)
      launch "$log" 9003 env PORT=9003 JWT_SECRET="$SECRET" node tests/peers/socketio/server.js ;;
    socketio-cluster)
      TARGET=socketio URLS=(ws://127.0.0.1:9003 ws://127.0.0.1:9004)
      for port in 9003 9004; do
        launch "$log.$port" "$port" env PORT="$port" JWT_SECRET="$SECRET" \
          REDIS_URL=redis://127.0.0.1:6379 node tests/peers/socketio/server.js
      done ;;
    *) die "unknown side $side" ;;
  esac
}

stop_side() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# run_one SCENARIO SIDE REP ARGS: one measured run on a fresh server; appends a JSON line.
run_one() {
  local scenario=$1 side=$2 rep=$3 args=$4 log="$LOG_DIR/$1-$2-$3" cmd url pid out status=0
  start_side "$side" "$log.server.log"
  cmd=("$BIN/loadgen" --json --clk-tck "$CLK_TCK" --secret "$SECRET")
  for pid in "${PIDS[@]}"; do cmd+=(--server-pid "$pid"); done
  # shellcheck disable=SC2206 # the scenario's arguments are words by design
  cmd+=($args)
  case "$args" in
    chat*) cmd+=(--url "${URLS[0]}") ;;
    *) cmd+=(--target "$TARGET"); for url in "${URLS[@]}"; do cmd+=(--url "$url"); done ;;
  esac
  say "[$scenario rep $rep/$REPS] $side: ${cmd[*]#"$BIN/"}"
  out=$(timeout 600 "${cmd[@]}" 2>"$log.loadgen.log") || status=$?
  sed 's/^/    /' "$log.loadgen.log" >&2
  stop_side
  if [ "$status" = 0 ] && [ -n "$out" ]; then
    printf '{"bench":"%s","side":"%s","rep":%d,"result":%s}\n' "$scenario" "$side" "$rep" "$out" >>"$RESULTS"
  else
    local why
    why=$(tail -n 3 "$log.loadgen.log" | tr '\n\t' '  ' | sed 's/["\]/ /g')
    say "run failed (exit $status): $why"
    printf '{"bench":"%s","side":"%s","rep":%d,"error":"exit %s: %s"}\n' "$scenario" "$side" "$rep" "$status" "$why" >>"$RESULTS"
  fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
BEGAN=$(date +%s)
for entry in "${SCENARIOS[@]}"; do
  IFS='|' read -r name sides full quick <<<"$entry"
  selected "$name" || continue
  args=$full
  [ "$QUICK" = 1 ] && args=$quick
  for rep in $(seq 1 "$REPS"); do
    for side in $sides; do run_one "$name" "$side" "$rep" "$args"; done
  done
done
ELAPSED=$(( $(date +%s) - BEGAN ))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
say "all runs done in ${ELAPSED} s; raw results: $RESULTS"

# ---------------------------------------------------------------------------------------
# The report: machine, versions, command, tables, ratios.
lock_version() { # lock_version DIR PACKAGE: the version npm's lock file pins
  python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["packages"]["node_modules/"+sys.argv[2]]["version"])
except Exception: print("?")' "tests/peers/$1/package-lock.json" "$2"
}
cargo_lock_version() { # cargo_lock_version LOCKFILE CRATE
  awk -v c="$2" '$0 == "name = \"" c "\"" { getline; gsub(/"/, "", $3); print $3; exit }' "$1" 2>/dev/null || true
}
META="$OUT_DIR/meta-$STAMP.json"
# Handed to Python through the environment, so that no quote in a value can break it.
B_DATE=$(date -u +%Y-%m-%d) B_COMMAND=$COMMAND B_QUICK=$QUICK B_REPS=$REPS B_ELAPSED=$ELAPSED \
B_NPROC=$(nproc) B_CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') \
B_KERNEL=$(uname -sr) B_RAM=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) \
B_LOAD_BEFORE=$LOAD_BEFORE B_LOAD_AFTER=$LOAD_AFTER \
B_RUSTC=$(rustc --version 2>/dev/null || echo '?') B_NODE=$(node --version 2>/dev/null || echo '?') \
B_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- server protocol tests/src 2>/dev/null || echo ' (uncommitted changes)')" \
B_WS=$(lock_version node-ws ws) B_SIO=$(lock_version socketio socket.io) \
B_ADAPTER=$(lock_version socketio @socket.io/redis-adapter) B_REDIS=$(lock_version socketio redis) \
B_FLOOR_TT=$(cargo_lock_version "$FLOOR_DIR/Cargo.lock" tokio-tungstenite) \
B_ROOMCAST_TT=$(cargo_lock_version Cargo.lock tokio-tungstenite) B_RESULTS=${RESULTS#"$ROOT/"} \
python3 - "$META" <<'PY'
import json, os, sys
e = os.environ
meta = {key: e["B_" + key.upper()] for key in
        ("date", "command", "nproc", "cpu", "kernel", "ram", "load_before", "load_after",
         "rustc", "node", "commit", "results")}
meta.update(quick=e["B_QUICK"] == "1", reps=int(e["B_REPS"]), elapsed_s=int(e["B_ELAPSED"]))
meta["peers"] = {
    "ws": e["B_WS"], "socket.io": e["B_SIO"], "@socket.io/redis-adapter": e["B_ADAPTER"],
    "redis (client)": e["B_REDIS"], "floor tokio-tungstenite": e["B_FLOOR_TT"] or "?",
    "roomcast tokio-tungstenite": e["B_ROOMCAST_TT"] or "?",
}
json.dump(meta, open(sys.argv[1], "w"))
PY
SECTION="$OUT_DIR/section-$STAMP.md"
python3 - "$META" "$RESULTS" >"$SECTION" <<'PY'
import json, statistics, sys
from collections import defaultdict

meta = json.load(open(sys.argv[1]))
runs = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
order, by = [], defaultdict(lambda: defaultdict(dict))  # bench -> side -> rep -> run
for run in runs:
    if run["bench"] not in order:
        order.append(run["bench"])
    by[run["bench"]][run["side"]][run["rep"]] = run

def get(result, path):
    for key in path.split("."):
        if not isinstance(result, dict):
            return None
        result = result.get(key)
    return result

def num(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, (int, float)) and abs(v) >= 1000 and digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"

def med(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None

def tally(values):
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return ", ".join(k if n == 1 else f"{k} ×{n}" for k, n in counts.items()) or "–"

# Columns: (heading, path in the loadgen's JSON, how to aggregate, digits).
LAT = [("p50 ms", "latency.p50_ms", "med", 2), ("p90 ms", "latency.p90_ms", "med", 2),
       ("p99 ms", "latency.p99_ms", "med", 2), ("max ms", "latency.max_ms", "med", 1)]
CPU = [("server CPU %", "cpu.server_cpu_pct", "med", 0), ("loadgen CPU %", "cpu.loadgen_cpu_pct", "med", 0)]
FANOUT = ([("deliveries/s", "deliveries_per_s", "med", 0)] + LAT +
          [("lost (worst)", "lost", "max", 0), ("dup (worst)", "duplicated", "max", 0),
           ("out of order (worst)", "out_of_order", "max", 0)] + CPU[:1] +
          [("server µs/delivery", "cpu.server_cpu_us_per_delivery", "med", 2)] + CPU[1:])
KINDS = {
    "fanout": FANOUT, "cluster-fanout": FANOUT,
    "slow-consumer": ([("others' deliveries/s", "deliveries_per_s", "med", 0)] + LAT[::2] +
                      [("lost (worst)", "lost", "max", 0), ("stalled ones", "stalled_report.summary", "tally", 0),
                       ("read from them after", "stalled_report.data_frames_read_after", "med", 0),
                       ("the server's own count", "stalled_report.server_counted", "tally", 0),
                       ("server RSS growth KiB", "server_rss_growth_kib", "med", 0)] + CPU),
    "idle": [("connections/s", "connections_per_s", "med", 0), ("bytes/connection", "rss_bytes_per_connection", "med", 0),
             ("connect+join p99 ms", "connect_latency.p99_ms", "med", 1),
             ("server µs/connection", "cpu.server_cpu_us_per_connection", "med", 0),
             ("failed (worst)", "failed", "max", 0)] + CPU,
    "chat": [("chats/s", "chats_per_s", "med", 0), ("refused (worst)", "refused", "max", 0),
             ("server µs/chat", "cpu.server_cpu_us_per_chat", "med", 0)] + CPU,
}
# Per-repetition ratios of the first side to each other: (label, path, how to read it).
LOWER, HIGHER = "below 1: the first side's is lower", "above 1: the first side's is higher"
RATIOS = {
    "fanout": [("p99 latency", "latency.p99_ms", LOWER), ("deliveries/s", "deliveries_per_s", HIGHER),
               ("server CPU µs per delivery", "cpu.server_cpu_us_per_delivery", LOWER)],
    "slow-consumer": [("others' p99 latency", "latency.p99_ms", LOWER),
                      ("server RSS growth", "server_rss_growth_kib", LOWER)],
    "idle": [("bytes per connection", "rss_bytes_per_connection", LOWER),
             ("connections/s", "connections_per_s", HIGHER)],
    "chat": [("chats/s", "chats_per_s", HIGHER)],
}
RATIOS["cluster-fanout"] = RATIOS["fanout"]

def describe(bench, sample):
    r = sample["result"]
    kind = r["scenario"]
    if kind in ("fanout", "cluster-fanout", "slow-consumer"):
        text = (f"{r['subscribers']:,} subscribers" + (f" over {len(r['urls'])} nodes" if len(r["urls"]) > 1 else "")
                + (f" + {r['stalled']} that never read" if r.get("stalled") else "")
                + f", one publisher at {r['rate']:g} msgs/s for {r['sent']:,} messages of {r['payload_bytes']} B"
                + f" ({r['offered_per_s']:,.0f} deliveries/s offered)")
    elif kind == "idle":
        text = f"{r['connections']:,} connections, each its own user, joined to one room, {r['concurrency']} opened at a time"
    elif kind == "chat":
        text = f"{r['senders']} senders over {r['rooms']} room(s), {r['window']} chats in flight each, every chat stored before its reply"
    else:
        text = kind
    return text

out = []
w = out.append
w("## Side by side (generated by scripts/bench.sh)")
w("")
w("_This section is written by `scripts/bench.sh` and replaced on each run; the sections after it are the measurement history._")
w("")
if meta["quick"]:
    w("> **Quick smoke run (`--quick`): tiny loads, one repetition. These figures test the pipeline; they are not a measurement.**")
    w("")
load = f"load average {meta['load_before']} before, {meta['load_after']} after"
w(f"- **Machine:** {meta['nproc']} cores ({meta['cpu']}), {meta['kernel']}, {meta['ram']} RAM; {load}. "
  "The load generator runs on the same cores as the servers: each table shows the CPU of both.")
peers = ", ".join(f"{k} {v}" for k, v in meta["peers"].items())
w(f"- **Versions:** Roomcast `{meta['commit']}`, {meta['rustc']}, Node {meta['node']}; {peers}.")
w(f"- **Command:** `{meta['command']}` on {meta['date']}: {meta['reps']} repetition(s) per scenario, the sides interleaved "
  f"(A B C D, A B C D, …), each run on a fresh server process (Roomcast: a fresh SQLite file, or a fresh PostgreSQL "
  f"schema and Redis prefix); {meta['elapsed_s'] // 60} min {meta['elapsed_s'] % 60} s in all. Medians over the repetitions; "
  f"losses are the worst repetition. Raw JSON of every run: `{meta['results']}` (not committed).")
w("- **Sides:** `roomcast` (SQLite, every chat stored before delivery), `roomcast-pg` (PostgreSQL), `roomcast-cluster` "
  "(two nodes, Redis broker, PostgreSQL store), `node-ws` (Node `ws` rooms, JSON protocol), `socketio` (Socket.IO 4, "
  "websocket transport), `socketio-cluster` (two Socket.IO nodes, Redis adapter), `floor` (bare tokio-tungstenite "
  "broadcast: no store, no presence).")
w("- **Bottleneck** is the loadgen's verdict per run: `none`, `loadgen` (it used > 85% of its threads, or its publisher "
  "fell behind while the server had CPU left), `server-backpressure` (the publisher's sends waited on the socket), "
  "`cores-full` (loadgen + server used ≥ 90% of the machine).")
for bench in order:
    sides = by[bench]
    samples = [run for side in sides.values() for run in side.values() if "result" in run]
    if not samples:
        w(f"\n### {bench}\n\nEvery run failed:")
        for side, reps in sides.items():
            for rep, run in sorted(reps.items()):
                w(f"- {side} rep {rep}: {run.get('error', '?')}")
        continue
    kind = samples[0]["result"]["scenario"]
    cols = KINDS.get(kind, [])
    w(f"\n### {bench}\n")
    w(describe(bench, samples[0]) + ".\n")
    w("| side | " + " | ".join(c[0] for c in cols) + " | bottleneck |")
    w("|" + " --- |" * (len(cols) + 2))
    failures = []
    for side, reps in sides.items():
        ok = [run["result"] for _, run in sorted(reps.items()) if "result" in run]
        failures += [f"{side} rep {rep}: {run['error']}" for rep, run in sorted(reps.items()) if "error" in run]
        cells = []
        for _, path, how, digits in cols:
            values = [get(r, path) for r in ok]
            if how == "med":
                cells.append(num(med(values), digits))
            elif how == "max":
                nums = [v for v in values if isinstance(v, (int, float))]
                cells.append(num(max(nums), digits) if nums else "–")
            else:
                cells.append(tally([", ".join(v) or "none" if isinstance(v, list) else str(v)
                                    for v in values if v is not None]))
        bottleneck = tally([get(r, "bottleneck.kind") or "?" for r in ok])
        name = side if len(ok) == len(reps) else f"{side} ({len(reps) - len(ok)} of {len(reps)} failed)"
        w(f"| {name} | " + " | ".join(cells) + f" | {bottleneck} |")
    base = next(iter(sides))
    lines = []
    for label, path, sense in RATIOS.get(kind, []):
        parts = []
        for other in list(sides)[1:]:
            ratios = []
            for rep in sorted(sides[base]):
                a = get(sides[base][rep].get("result"), path)
                b = get(sides[other].get(rep, {}).get("result"), path)
                if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
                    ratios.append(a / b)
            if ratios:
                each = ", ".join(f"{x:.2f}" for x in ratios)
                median = f" (median {statistics.median(ratios):.2f})" if len(ratios) > 1 else ""
                parts.append(f"{base} / {other} {each}{median}")
        if parts:
            lines.append(f"- {label} ({sense}): " + "; ".join(parts))
    if lines:
        w("\nPer-repetition ratios, in repetition order:\n")
        out.extend(lines)
    if failures:
        w("\nFailed runs:\n")
        out.extend(f"- {f}" for f in failures)
print("\n".join(out))
PY
cat "$SECTION" >&2
if [ "$WRITE_DOCS" = 1 ]; then
  python3 - "$DOCS" "$SECTION" <<'PY'
import sys
docs, section = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- bench.sh:begin -->", "<!-- bench.sh:end -->"
text = open(docs).read() if __import__("os").path.exists(docs) else "# Benchmarks\n"
block = f"{begin}\n{section.rstrip()}\n{end}"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + block + rest.split(end, 1)[1]
else:
    # After the intro: before the first second-level heading.
    at = text.find("\n## ")
    at = len(text) if at < 0 else at + 1
    text = text[:at] + block + "\n\n" + text[at:]
open(docs, "w").write(text)
PY
  say "wrote the results section of $DOCS"
fi
