#!/usr/bin/env bash
# Issue #12: NDJSON batch ingest with `seq` against the same batches with `event_id`, side by side: ROUNDS rounds,
# each a fresh release `speedflow serve` per side, the two sides alternating (and which goes first alternating), so
# the machine's noise falls on both. wrk (8 connections, batches of BATCH events over CAMERAS cameras:
# bench/wrk/batch.lua, IDENTITY=seq). Prints every run, then the medians and the ratio seq/event_id, and checks
# that every event was accepted (none taken for a duplicate).
#
#   bench/seq-ingest.sh
#   ROUNDS=7 DURATION=10s bench/seq-ingest.sh
#   PERF=1 bench/seq-ingest.sh    # also `perf record -g` the server in the last round of each side (perf.*.data in $OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
export CAMERAS=${CAMERAS:-1000} BATCH=${BATCH:-500}
SCRATCH=${SCRATCH:-.build}
[ "${SKIP_BUILD:-0}" = 1 ] || swift build -c release --scratch-path "$SCRATCH" --product speedflow >&2
BIN=$SCRATCH/release/speedflow
WORK=$(mktemp -d /tmp/speedflow-seq-ingest.XXXXXX)
OUT=${OUT:-$WORK}
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK/data"; [ "$OUT" = "$WORK" ] || rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
pct_ms() { awk -v p="$1" '$1==p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg); wrk shares the cores"
for r in $(seq 1 "$ROUNDS"); do
  order="event_id seq"; [ $((r % 2)) = 0 ] && order="seq event_id"
  for identity in $order; do
    rm -rf "$WORK/data"
    PORT=$(free_port)
    "$BIN" serve --data-dir "$WORK/data" --port "$PORT" --log-level warning > "$WORK/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
    before=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    PERF_PID=
    if [ "${PERF:-0}" = 1 ] && [ "$r" = "$ROUNDS" ]; then
      perf record -g -F 499 -p "$PID" -o "$OUT/perf.$identity.data" >/dev/null 2>&1 &
      PERF_PID=$!
    fi
    IDENTITY=$identity wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/wrk/batch.lua "http://127.0.0.1:$PORT" > "$WORK/wrk.txt"
    [ -n "$PERF_PID" ] && { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; }
    after=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    stats=$(curl -fs "http://127.0.0.1:$PORT/stats")
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=
    python3 - "$identity" "$r" "$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")" "$(pct_ms 50% < "$WORK/wrk.txt")" \
      "$(pct_ms 99% < "$WORK/wrk.txt")" "$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")" \
      "$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l)" "$stats" "$(grep -c Non-2xx "$WORK/wrk.txt" || true)" \
      "$OUT/runs.jsonl" <<'PY'
import json, os, sys
identity, r, rps, p50, p99, requests, cpu, stats, non2xx, out = sys.argv[1:]
s = json.loads(stats)
run = {"identity": identity, "round": int(r), "rps": float(rps), "p50": float(p50), "p99": float(p99),
       "requests": int(requests), "cpu_us_per_request": float(cpu) * 1e6 / int(requests),
       "accepted": s["accepted_total"], "duplicates": s["duplicates_total"], "non2xx": int(non2xx)}
with open(out, "a") as f:
    f.write(json.dumps(run) + "\n")
batch = int(os.environ["BATCH"])
print(f"round {r} {identity:8}: {run['rps']:.0f} req/s = {run['rps'] * batch:.0f} events/s, p50 {p50} ms, p99 {p99} ms, "
      f"server CPU {run['cpu_us_per_request']:.0f} us/request; accepted {run['accepted']}, duplicates {run['duplicates']}"
      + (" NON-2xx!" if run["non2xx"] else ""))
PY
  done
done
python3 - "$OUT/runs.jsonl" <<'PY'
import json, statistics, sys, os
runs = [json.loads(l) for l in open(sys.argv[1])]
batch = int(os.environ["BATCH"])
med = lambda side, k: statistics.median(r[k] for r in runs if r["identity"] == side)
print(f"\nmedians of {len(runs) // 2} rounds (batches of {batch}, {os.environ['CAMERAS']} cameras):")
for side in ("event_id", "seq"):
    print(f"  {side:8}: {med(side, 'rps') * batch:,.0f} events/s ({med(side, 'rps'):.0f} req/s), p50 {med(side, 'p50'):.2f} ms, "
          f"p99 {med(side, 'p99'):.2f} ms, server CPU {med(side, 'cpu_us_per_request'):.0f} us/request")
rounds = sorted({r["round"] for r in runs})
ratios = [next(x["rps"] for x in runs if x["round"] == n and x["identity"] == "seq") /
          next(x["rps"] for x in runs if x["round"] == n and x["identity"] == "event_id") for n in rounds]
print(f"  seq/event_id throughput: {med('seq', 'rps') / med('event_id', 'rps'):.2f} (per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
      f"median of rounds {statistics.median(ratios):.2f}); CPU per request seq/event_id "
      f"{med('seq', 'cpu_us_per_request') / med('event_id', 'cpu_us_per_request'):.2f}; p99 {med('seq', 'p99') / med('event_id', 'p99'):.2f}")
bad = [r for r in runs if r["duplicates"] or r["non2xx"]]
print("  every event accepted, none a duplicate" if not bad else f"  WARNING: duplicates or errors in {len(bad)} runs")
PY
