#!/usr/bin/env bash
# Speedflow benchmarks: prints figures (medians of REPEAT runs), never pass/fail.
#
#   bench/run.sh                       # everything, release build
#   DURATION=10s REPEAT=3 bench/run.sh
#   QUERY_CAMERAS=1000 QUERY_DAYS=30 bench/run.sh query
#   STORE=clickhouse bench/run.sh ingest|query   # the same against a local ClickHouse (scripts/clickhouse)
#   AUTH=1 bench/run.sh ingest         # --auth required: camera token for writes (bench/secure.sh compares)
#   TLS=1 bench/run.sh ingest          # HTTPS: a self-signed P-256 certificate made here with openssl (bench/tls.sh compares)
#
# Load comes from wrk (Debian) on the same 2-core machine as the server, so the server gets roughly one core:
# figures are lower bounds of what the server does alone.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15s}
REPEAT=${REPEAT:-3}
CAMERAS=${CAMERAS:-1000}
QUERY_CAMERAS=${QUERY_CAMERAS:-1000}
QUERY_DAYS=${QUERY_DAYS:-30}
WHAT=${1:-all}
STORE=${STORE:-sqlite}
TLS=${TLS:-0}
# AUTH=1: the server requires credentials (--auth required); wrk writes with a camera token for every camera (KV*,
# limits far above the load, so its grant check and quota buckets run without refusing anything) and reads with a
# reader token; the tokens go through files, never command lines.
AUTH=${AUTH:-0}
# In-process camera-day queries: ClickHouse answers each in milliseconds, not microseconds, so fewer of them.
if [ "$STORE" = clickhouse ]; then QUERIES=${QUERIES:-500}; else QUERIES=${QUERIES:-20000}; fi
export CAMERAS QUERY_DAYS

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
SCRATCH=${SCRATCH:-.build}
swift build -c release --scratch-path "$SCRATCH" --product speedflow >&2
swift build -c release --scratch-path "$SCRATCH" --product speedflow-bench >&2
BIN=$SCRATCH/release/speedflow
BENCH=$SCRATCH/release/speedflow-bench

WORK=$(mktemp -d /tmp/speedflow-bench.XXXXXX)
PID=
STORE_ARGS=()
BENCH_STORE_ARGS=()
SCHEME=http
TLS_ARGS=()
CURL_TLS=()
if [ "$TLS" = 1 ]; then
  # wrk does not verify certificates; curl is told the certificate.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.pem" \
    -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null
  TLS_ARGS=(--tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key")
  SCHEME=https
  CURL_TLS=(--cacert "$WORK/tls.pem")
fi
if [ "$STORE" = clickhouse ]; then
  # A throwaway single node on loopback, stopped on exit; a fresh database per run.
  export SPEEDFLOW_CH_DIR=$WORK/clickhouse
  CH_URL=$(scripts/clickhouse start single)
  DB="bench_$(date +%s)"
  STORE_ARGS=(--store clickhouse --clickhouse-url "$CH_URL" --clickhouse-database "$DB")
  BENCH_STORE_ARGS=(--clickhouse-url "$CH_URL" --clickhouse-database "${DB}_q")
fi
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  [ "$STORE" = clickhouse ] && scripts/clickhouse stop
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

AUTH_ARGS=()
CURL_AUTH=()
start_server() {  # $1 = data dir
  PORT=$(free_port)
  if [ "$AUTH" = 1 ]; then
    mkdir -p "$1"
    "$BIN" token create --data-dir "$1" --role camera --kvfv 'KV*' --requests-per-second 1000000000 \
      --events-per-second 1000000000 > "$WORK/camera.token" 2>/dev/null
    "$BIN" token create --data-dir "$1" --role reader > "$WORK/reader.token" 2>/dev/null
    printf 'Authorization: Bearer %s\n' "$(cat "$WORK/reader.token")" > "$WORK/reader.header"
    AUTH_ARGS=(--auth required)
    CURL_AUTH=(-H "@$WORK/reader.header")
    export SPEEDFLOW_BENCH_TOKEN_FILE="$WORK/camera.token"
  fi
  "$BIN" serve --data-dir "$1" --port "$PORT" --log-level warning "${STORE_ARGS[@]}" "${TLS_ARGS[@]}" "${AUTH_ARGS[@]}" > "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do curl -fs "${CURL_TLS[@]}" "$SCHEME://127.0.0.1:$PORT/health" >/dev/null && return 0; sleep 0.1; done
  echo "server did not start"; cat "$WORK/server.log"; exit 1
}
stop_server() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
# CPU seconds (user + system) the server has used so far: per request, a figure the machine's load does not move.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }
hwm_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# wrk latency lines look like "     50%    1.23ms"; print the value in ms.
pct_ms() { awk -v p="$1" '$1==p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'; }

run_wrk() {  # $1 = name, $2 = script, $3 = connections, $4 = events per request, $5 = method label
  local rps=() p50=() p99=() cpu=()
  for i in $(seq 1 "$REPEAT"); do
    local before; before=$(cpu_ticks)
    wrk -t1 -c"$3" -d"$DURATION" --latency -s "bench/wrk/$2" "$SCHEME://127.0.0.1:$PORT" > "$WORK/wrk.txt"
    grep -q "Non-2xx" "$WORK/wrk.txt" && { echo "  run $i: $(grep Non-2xx "$WORK/wrk.txt")"; }
    rps+=("$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")")
    p50+=("$(pct_ms 50% < "$WORK/wrk.txt")")
    p99+=("$(pct_ms 99% < "$WORK/wrk.txt")")
    local requests; requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
    cpu+=("$(echo "($(cpu_ticks) - $before) * 1000000 / $(getconf CLK_TCK) / $requests" | bc -l)")
    printf '  run %d: %s req/s, p50 %s ms, p99 %s ms, server CPU %.0f us/request\n' "$i" "${rps[-1]}" "${p50[-1]}" "${p99[-1]}" "${cpu[-1]}"
  done
  local m; m=$(printf '%s\n' "${rps[@]}" | median)
  printf '%s: median %.0f requests/s (%.0f events/s); p50 %s ms, p99 %s ms (medians of %d runs of %s, %d connections); server CPU %.0f us/request\n' \
    "$1" "$m" "$(echo "$m * $4" | bc -l)" "$(printf '%s\n' "${p50[@]}" | median)" "$(printf '%s\n' "${p99[@]}" | median)" \
    "$REPEAT" "$DURATION" "$3" "$(printf '%s\n' "${cpu[@]}" | median)"
}

echo "store: $STORE, $SCHEME, auth $([ "$AUTH" = 1 ] && echo required || echo off)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); load generator shares the cores"

if [ "$WHAT" = all ] || [ "$WHAT" = ingest ]; then
  start_server "$WORK/ingest"
  echo "== single-event POSTs ($CAMERAS cameras, durable: fsync before every 200)"
  run_wrk "single POSTs" single.lua 64 1
  echo "== NDJSON batches of 500 events"
  run_wrk "NDJSON batches" batch.lua 8 500
  STATS=$(curl -fs "${CURL_TLS[@]}" "${CURL_AUTH[@]}" "$SCHEME://127.0.0.1:$PORT/stats")
  echo "server RSS after ingest: $(rss_mb) MiB (peak $(hwm_mb) MiB)"
  python3 - "$STATS" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
n = s["accepted_total"]
logged = n + s["duplicates_total"]
print(f"accepted {n} events ({s['duplicates_total']} duplicates); log {s['log_bytes']/logged:.1f} bytes/logged event, "
      f"store {s['store_bytes']/n:.1f} bytes/event (aggregates + 8-byte dedup identity)")
PY
  stop_server
fi

if [ "$WHAT" = all ] || [ "$WHAT" = query ]; then
  echo "== query: one camera-day at 5m with $QUERY_CAMERAS cameras × $QUERY_DAYS days stored"
  "$BENCH" populate --data-dir "$WORK/query" --cameras "$QUERY_CAMERAS" --days "$QUERY_DAYS" "${BENCH_STORE_ARGS[@]}" 2> "$WORK/populate.log"
  "$BENCH" query --data-dir "$WORK/query" --cameras "$QUERY_CAMERAS" --days "$QUERY_DAYS" --queries "$QUERIES" "${BENCH_STORE_ARGS[@]}"
  [ "$STORE" = clickhouse ] && STORE_ARGS=(--store clickhouse --clickhouse-url "$CH_URL" --clickhouse-database "${DB}_q")
  CAMERAS=$QUERY_CAMERAS start_server "$WORK/query"
  [ "$AUTH" = 1 ] && export SPEEDFLOW_BENCH_TOKEN_FILE="$WORK/reader.token"
  CAMERAS=$QUERY_CAMERAS run_wrk "HTTP query one camera-day, 1 connection (latency)" query.lua 1 1
  CAMERAS=$QUERY_CAMERAS run_wrk "HTTP query one camera-day, 4 connections (throughput)" query.lua 4 1
  echo "server RSS after queries: $(rss_mb) MiB"
  stop_server
fi

if [ "$WHAT" = all ] || [ "$WHAT" = aggregate ]; then
  echo "== in-process paths"
  "$BENCH" aggregate
fi
