#!/usr/bin/env bash
# The scale-out chain on one machine, measured with speedflow loadgen (figures, never pass/fail):
#   librdkafka mock cluster (3 brokers, 6 partitions) · 2 ingest nodes · 2 aggregators · ClickHouse · 1 API node.
# loadgen posts to ingest node 1 and queries the API node: freshness = acknowledged → visible in a query. Each run
# has cameras of its own (--camera-prefix), so its verification sees only its own events; "all counted N s after
# the last acknowledgement" is how far aggregation trailed ingest.
#
#   bench/scaleout.sh                          # single events at 5,000/s for 60 s, then batches at full speed
#   RATE=2000 DURATION=30s bench/scaleout.sh
#   then batches of 500 at full speed, and at BATCH_RATE (default 20,000) events/s with outage backlogs
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-5000}
DURATION=${DURATION:-60s}
SCRATCH=${SCRATCH:-.build}
swift build -c release --scratch-path "$SCRATCH" --traits Kafka --product speedflow >&2
BIN=$SCRATCH/release/speedflow

WORK=$(mktemp -d /tmp/speedflow-scaleout.XXXXXX)
export SPEEDFLOW_CH_DIR=$WORK/clickhouse
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/clickhouse stop
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_health() { for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done; echo "port $1 not healthy"; exit 1; }

CH=$(scripts/clickhouse start single)
"$BIN" dev kafka-mock --brokers 3 --partitions 6 > "$WORK/kafka.out" 2>"$WORK/kafka.err" &
PIDS+=($!)
until B=$(sed -n 's/^bootstrap: //p' "$WORK/kafka.out") && [ -n "$B" ]; do sleep 0.1; done
STORE=(--store clickhouse --clickhouse-url "$CH" --clickhouse-database "scaleout_$(date +%s)")

INGEST=(); AGG=()
for i in 1 2; do
  p=$(free_port); "$BIN" ingest --log kafka --brokers "$B" --port "$p" --log-level warning > "$WORK/ingest$i.log" 2>&1 &
  PIDS+=($!); INGEST+=("$p")
  p=$(free_port); "$BIN" aggregate --log kafka --brokers "$B" "${STORE[@]}" --data-dir "$WORK/agg$i" --port "$p" --log-level warning > "$WORK/agg$i.log" 2>&1 &
  PIDS+=($!); AGG+=("$p")
done
API=$(free_port)
"$BIN" api "${STORE[@]}" --port "$API" --log-level warning > "$WORK/api.log" 2>&1 &
PIDS+=($!)
for p in "${INGEST[@]}" "${AGG[@]}" "$API"; do wait_health "$p"; done
sleep 12  # both aggregators join the group (the mock's group coordinator waits for members)

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); every process, the mock cluster and ClickHouse share them"
echo "== single events at $RATE/s for $DURATION, 1,000 cameras, queries on the API node (--verify)"
"$BIN" loadgen --url "http://127.0.0.1:${INGEST[0]}" --query-url "http://127.0.0.1:$API" --stateless-ingest \
  --camera-prefix S --rate "$RATE" --duration "$DURATION" --freshness-interval 100ms --verify --verify-wait 180s --quiet
echo "== NDJSON batches of 500 at full speed for 30s (--verify)"
"$BIN" loadgen --url "http://127.0.0.1:${INGEST[1]}" --query-url "http://127.0.0.1:$API" --stateless-ingest \
  --camera-prefix B --mode batch --batch-size 500 --duration 30s --freshness-interval 100ms --verify --verify-wait 180s --quiet
echo "== NDJSON batches of 500 at ${BATCH_RATE:-20000} events/s for 30s, 1,000 cameras with outage backlogs (--verify)"
"$BIN" loadgen --url "http://127.0.0.1:${INGEST[0]}" --query-url "http://127.0.0.1:$API" --stateless-ingest \
  --camera-prefix R --mode batch --batch-size 500 --rate "${BATCH_RATE:-20000}" --duration 30s --outage-share 0.2 --outage 5s \
  --freshness-interval 100ms --verify --verify-wait 180s --quiet
