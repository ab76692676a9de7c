#!/usr/bin/env bash
# Fleet load test: seed 000's scenario (single-event POSTs from 1,000 cameras for 3 minutes) and a batch
# scenario, each against a fresh `speedflow serve`, each verified window by window. Prints the figures
# next to seed 000's. Loopback only; server and load generator share this machine's cores.
#
# Environment (defaults in brackets):
#   DURATION [3m]         length of the single-event scenario (seed 000 ran 3m30s)
#   BATCH_DURATION [1m]   length of the batch scenario
#   CAMERAS [1000]        simulated cameras
#   CONCURRENCY [64]      requests in flight (keep-alive connections)
#   BATCH_SIZE [500]      events per NDJSON batch
#   RATE []               target events/s for both scenarios (empty: as fast as the server answers)
#   SCENARIOS [single batch]
#   EXTRA_ARGS []         more `speedflow loadgen` options for both scenarios
#   SCRATCH [.build]      SwiftPM scratch path of the release build
#   KEEP [0]              1 keeps the data directories and reports
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3m}
BATCH_DURATION=${BATCH_DURATION:-1m}
CAMERAS=${CAMERAS:-1000}
CONCURRENCY=${CONCURRENCY:-64}
BATCH_SIZE=${BATCH_SIZE:-500}
RATE=${RATE:-}
SCENARIOS=${SCENARIOS:-single batch}
EXTRA_ARGS=${EXTRA_ARGS:-}
SCRATCH=${SCRATCH:-.build}
KEEP=${KEEP:-0}

echo "== building release (swift build -c release --scratch-path $SCRATCH)" >&2
swift build -c release --scratch-path "$SCRATCH" --product speedflow >&2
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/speedflow"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/speedflow-fleet.XXXXXX")
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

# Starts a fresh server on a free port (--port 0) and waits for /health; sets SERVER_PID and URL.
start_server() {
    local name=$1
    mkdir -p "$WORK/$name"
    "$BIN" serve --data-dir "$WORK/$name/data" --host 127.0.0.1 --port 0 --log-level warning \
        >"$WORK/$name/server.log" 2>&1 &
    SERVER_PID=$!
    URL=""
    for _ in $(seq 1 600); do
        URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/$name/server.log" | head -1 || true)
        if [[ -n "$URL" ]] && curl -sf "$URL/health" >/dev/null 2>&1; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/$name/server.log" >&2; echo "server exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "server did not become healthy" >&2
    exit 1
}

server_rss_mib() {
    awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo "?"
}

STATUS=0
run_scenario() {
    local name=$1; shift
    start_server "$name"
    echo "== $name: speedflow loadgen $*" >&2
    # shellcheck disable=SC2086
    if ! "$BIN" loadgen --url "$URL" --cameras "$CAMERAS" --concurrency "$CONCURRENCY" ${RATE:+--rate "$RATE"} \
        --verify --json-output "$WORK/$name/report.json" "$@" $EXTRA_ARGS | tee "$WORK/$name/report.txt"; then
        STATUS=1
    fi
    echo "$(server_rss_mib)" >"$WORK/$name/server-rss"
    stop_server
    du -sm "$WORK/$name/data" | cut -f1 >"$WORK/$name/data-mib"
    echo >&2
}

for scenario in $SCENARIOS; do
    case $scenario in
        single) run_scenario single --mode single --duration "$DURATION" ;;
        batch) run_scenario batch --mode batch --batch-size "$BATCH_SIZE" --duration "$BATCH_DURATION" ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
done

# Side by side with seed 000 (FastAPI -> Kafka -> ClickHouse, k6, 4 ClickHouse nodes, 4 consumers).
row() { printf '%-26s %-26s' "$1" "$2"; shift 2; for c in "$@"; do printf ' %-30s' "$c"; done; printf '\n'; }
fig() { jq -r 'def r: (. * 10 | round) / 10; def n: if . < 1000 then tostring else ((. / 1000 | floor) | n) + "," + ((. % 1000) | tostring | ("00" + .)[-3:]) end; '"$2" "$WORK/$1/report.json"; }
header=(); for s in $SCENARIOS; do header+=("speedflow $s"); done
echo
row "" "seed 000" "${header[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" '"\(.eventsGenerated|n) in \(.elapsedSeconds|floor) s"')"); done
row "events generated" "1,952,643 in 210 s" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" '"\(.requestsPerSecond|floor|n) req/s, \(.acceptedPerSecond|floor|n) ev/s"')"); done
row "throughput" "9,282 RPS" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" '"p50 \(.latency.p50Ms|r) / p95 \(.latency.p95Ms|r) ms"')"); done
row "HTTP latency" "p95 418 ms" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" '"p99 \(.latency.p99Ms|r) / max \(.latency.maxMs|r) ms"')"); done
row "HTTP latency tail" "-" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" '"p50 \(.freshness.delay.p50Ms|r) / p99 \(.freshness.delay.p99Ms|r) ms"')"); done
row "ack -> visible in query" "476 s median (to store)" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" '"\(.duplicates|n) resends, 0 counted"')"); done
row "duplicates" "0 (none were sent)" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" '"\(.rejected|n) rejected, \(.outages) outages"')"); done
row "bad data / bad links" "none simulated" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" 'if .verification.passed then "EXACT, \(.verification.eventsExpected|n) events" else "MISMATCH" end')"); done
row "verification" "unique ids counted" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(cat "$WORK/$s/server-rss") MiB RSS, $(cat "$WORK/$s/data-mib") MiB data"); done
row "server memory / disk" "4 ClickHouse nodes" "${cols[@]}"
cols=(); for s in $SCENARIOS; do cols+=("$(fig "$s" '"\(.loadgenMaxRSSMiB|floor) MiB RSS"')"); done
row "load generator memory" "k6" "${cols[@]}"
exit $STATUS
