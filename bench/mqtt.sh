#!/usr/bin/env bash
# MQTT ingest against HTTP ingest on the same release build, in one run: `speedflow loadgen` drives the same fleet
# (1,000 cameras on bad links: outages and backlogs, resends, lost answers, invalid events) with --transport http
# (POST /events, 200 after the fsync) and --transport mqtt (QoS 1 PUBLISH, PUBACK after the fsync), single events and
# NDJSON batches of 500, each run against a fresh `speedflow serve --mqtt-port 0` and verified window by window.
# The four runs alternate ROUNDS times; printed: every run, then per shape the medians of accepted events/s,
# acknowledgement latency p50/p99 and ack -> visible in a query p99, with the ratio MQTT/HTTP.
#
#   bench/mqtt.sh                                   # 3 rounds of 10 s per run
#   ROUNDS=5 DURATION=20s bench/mqtt.sh
#   SCRATCH=.build-rel bench/mqtt.sh                # another SwiftPM scratch path for the release build
#
# Environment (defaults in brackets): ROUNDS [3], DURATION [10s], CAMERAS [1000], CONCURRENCY [64],
# BATCH_SIZE [500], SHAPES [single batch], FRESHNESS [100ms] (how often ack -> visible is probed), EXTRA_ARGS []
# (more loadgen options for every run), SCRATCH [.build], BIN [] (a speedflow binary to use instead of building),
# KEEP [0] (1 keeps data directories and reports).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CAMERAS=${CAMERAS:-1000}
CONCURRENCY=${CONCURRENCY:-64}
BATCH_SIZE=${BATCH_SIZE:-500}
SHAPES=${SHAPES:-single batch}
EXTRA_ARGS=${EXTRA_ARGS:-}
SCRATCH=${SCRATCH:-.build}
KEEP=${KEEP:-0}
FRESHNESS=${FRESHNESS:-100ms}

if [[ -z "${BIN:-}" ]]; then
    echo "== building release (swift build -c release --scratch-path $SCRATCH)" >&2
    swift build -c release --scratch-path "$SCRATCH" --product speedflow >&2
    BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/speedflow"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/speedflow-mqtt-bench.XXXXXX")
SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    if [[ "$KEEP" == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

# A fresh server on free ports (--port 0, --mqtt-port 0); sets SERVER_PID, URL and MQTT_URL once /health answers.
start_server() {
    local dir=$1
    mkdir -p "$dir"
    "$BIN" serve --data-dir "$dir/data" --host 127.0.0.1 --port 0 --mqtt-port 0 --log-level warning >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    URL=""; MQTT_URL=""
    for _ in $(seq 1 600); do
        URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$dir/server.log" | head -1 || true)
        MQTT_URL=$(grep -o 'mqtt://127\.0\.0\.1:[0-9]*' "$dir/server.log" | head -1 || true)
        if [[ -n "$URL" && -n "$MQTT_URL" ]] && curl -sf "$URL/health" >/dev/null 2>&1; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; echo "server exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "server did not become healthy" >&2
    exit 1
}

STATUS=0
for r in $(seq 1 "$ROUNDS"); do
    for shape in $SHAPES; do
        case $shape in
            single) shape_args=(--mode single) ;;
            batch) shape_args=(--mode batch --batch-size "$BATCH_SIZE") ;;
            *) echo "unknown shape $shape" >&2; exit 2 ;;
        esac
        for transport in http mqtt; do
            dir="$WORK/$shape-$transport-$r"
            start_server "$dir"
            # shellcheck disable=SC2086
            if ! "$BIN" loadgen --url "$URL" --transport "$transport" --mqtt-url "$MQTT_URL" --cameras "$CAMERAS" \
                --concurrency "$CONCURRENCY" --duration "$DURATION" "${shape_args[@]}" --freshness-interval "$FRESHNESS" --verify --quiet \
                --json-output "$dir/report.json" $EXTRA_ARGS >"$dir/report.txt" 2>&1; then
                STATUS=1
                echo "round $r $shape $transport: FAILED (see $dir/report.txt)" >&2
                KEEP=1
            fi
            stop_server
            jq -r --arg r "$r" --arg s "$shape" --arg t "$transport" \
                '"round \($r) \($s) \($t): \(.acceptedPerSecond|floor) accepted events/s, ack p50 \(.latency.p50Ms) ms p99 \(.latency.p99Ms) ms, ack -> visible p99 \(.freshness.delay.p99Ms // "n/a") ms, verification \(if .verification.passed then "EXACT" else "MISMATCH" end)"' \
                "$dir/report.json"
        done
    done
done

python3 - "$WORK" "$ROUNDS" "$SHAPES" <<'PY'
import json, statistics, sys
work, rounds, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def runs(shape, transport):
    out = []
    for r in range(1, rounds + 1):
        try:
            out.append(json.load(open(f"{work}/{shape}-{transport}-{r}/report.json")))
        except (OSError, ValueError):
            pass
    return out
def med(reports, f):
    values = [f(x) for x in reports if f(x) is not None]
    return statistics.median(values) if values else float("nan")
print(f"\nmedians of {rounds} interleaved rounds (same release binary, fresh server per run, PUBACK / 200 after the fsync):")
for shape in shapes:
    h, m = runs(shape, "http"), runs(shape, "mqtt")
    figs = {
        "accepted events/s": lambda x: x["acceptedPerSecond"],
        "ack p50 ms": lambda x: x["latency"]["p50Ms"],
        "ack p99 ms": lambda x: x["latency"]["p99Ms"],
        "ack->visible p99 ms": lambda x: (x.get("freshness") or {}).get("delay", {}).get("p99Ms"),
    }
    parts = []
    for name, f in figs.items():
        a, b = med(h, f), med(m, f)
        parts.append(f"{name}: HTTP {a:.2f} | MQTT {b:.2f} | MQTT/HTTP {b / a if a else float('nan'):.2f}")
    exact = all(x.get("verification", {}).get("passed") for x in h + m)
    print(f"  {shape}: " + "; ".join(parts) + f"; every run verified exact: {exact}")
PY
exit $STATUS
