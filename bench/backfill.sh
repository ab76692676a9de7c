#!/usr/bin/env bash
# Issue #11: late-data backfill into the ClickHouse store, end to end (bench/backfill.py makes the stream).
#
#   bench/backfill.sh                      # this tree's release build, REPEAT=3 rounds
#   BEFORE=/path/to/old/speedflow bench/backfill.sh   # and an older binary, side by side in each round
#   EVENTS=160000 REPEAT=3 bench/backfill.sh
#   CLICKHOUSE_URL=http://127.0.0.1:18123 bench/backfill.sh   # a ClickHouse already running (else a throwaway one)
#
# Per round and binary, on a fresh ClickHouse database, `serve --store clickhouse` takes the stream and a
# separate `speedflow api` node answers:
#   fresh     the stream into an empty store: post time, then last acknowledgement -> api node counts everything
#   existing  serve restarted (nothing in memory), a second stream over the same cameras and hours: every late
#             event lands in a bucket the store holds and must be read back (dedup), then the same figure
#   stop      a third stream, SIGTERM right after its last acknowledgement: seconds until serve has exited
# ClickHouse (scripts/clickhouse, 18.16), both nodes and the client share this machine's cores. Prints medians.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-160000}
REPEAT=${REPEAT:-3}
SCRATCH=${SCRATCH:-.build}
swift build -c release --scratch-path "$SCRATCH" --product speedflow >&2
AFTER=$SCRATCH/release/speedflow
WORK=$(mktemp -d /tmp/speedflow-backfill.XXXXXX)
export SPEEDFLOW_CH_DIR=$WORK/clickhouse
CH=${CLICKHOUSE_URL:-$(scripts/clickhouse start single)}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "${CLICKHOUSE_URL:-}" ] && scripts/clickhouse stop
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_healthy() { for _ in $(seq 600); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.1; done; echo "not healthy: $1" >&2; return 1; }

start() {  # $1 binary, $2 role, $3 data dir, $4 database -> sets STARTED_PID, STARTED_URL
  local port; port=$(free_port)
  "$1" "$2" --data-dir "$3" --port "$port" --store clickhouse --clickhouse-url "$CH" --clickhouse-database "$4" \
    >>"$WORK/$2.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  STARTED_URL=http://127.0.0.1:$port
  wait_healthy "$STARTED_URL"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

declare -A RESULTS
one_round() {  # $1 label, $2 binary, $3 round
  local db="backfill_${1}_$3_$(date +%s)" dir=$WORK/$1-$3 base
  base=$(( $(date +%s) * 1000 - 60000 ))
  start "$2" serve "$dir" "$db"; local serve=$STARTED_PID serve_url=$STARTED_URL
  start "$2" api "$dir-api" "$db"; local api=$STARTED_PID api_url=$STARTED_URL
  local fresh existing stopped
  fresh=$(python3 bench/backfill.py --serve "$serve_url" --api "$api_url" --events "$EVENTS" --run-tag A --base-ms "$base")
  stop "$serve"
  start "$2" serve "$dir" "$db"; serve=$STARTED_PID; serve_url=$STARTED_URL
  existing=$(python3 bench/backfill.py --serve "$serve_url" --api "$api_url" --events "$EVENTS" --run-tag B --cameras-tag A --base-ms "$base")
  stopped=$(python3 bench/backfill.py --serve "$serve_url" --api "$api_url" --events "$EVENTS" --run-tag C --base-ms "$base" --stop-pid "$serve")
  wait "$serve" 2>/dev/null || true
  stop "$api"
  echo "$1 round $3: fresh $fresh" >&2
  echo "$1 round $3: existing $existing" >&2
  echo "$1 round $3: stop $stopped" >&2
  RESULTS[$1]+="$fresh|$existing|$stopped"$'\n'
}

LABELS=(after)
[ -n "${BEFORE:-}" ] && LABELS=(before after)
for round in $(seq "$REPEAT"); do
  for label in "${LABELS[@]}"; do
    bin=$AFTER
    [ "$label" = before ] && bin=$BEFORE
    one_round "$label" "$bin" "$round"
  done
done

echo "machine: $(nproc) cores; ClickHouse $(curl -s "$CH/?query=SELECT%20version()") on the same cores; $EVENTS events per stream, medians of $REPEAT"
for label in "${LABELS[@]}"; do
  printf '%s' "${RESULTS[$label]}" | python3 bench/backfill.py --summarize "$label"
done
