#!/usr/bin/env bash
# Throughput of the PostgreSQL source, per mode (poll, notify, logical), medians of REPEAT runs, against a
# throwaway PostgreSQL 15 on loopback (scripts/postgres). Two scenarios, each on a fresh table and data dir:
#
#   backlog    ROWS rows already committed; `speedflow source postgres --exit-when-caught-up` drains them
#              (rows/s = rows / wall time of the command, engine start and fsyncs included)
#   streaming  `speedflow serve` with the source running; WRITERS psql sessions insert ROWS rows in
#              transactions of TXN rows; rows/s = rows / (first insert → last row counted in /metrics), and
#              the writers' own rate (rows / (first insert → last commit)), which bounds it
#
# Usage: bench/postgres.sh [backlog|streaming|all]   (env: ROWS, REPEAT, BATCH, WRITERS, TXN, SCRATCH)
set -euo pipefail
cd "$(dirname "$0")/.."

WHAT=${1:-all}
ROWS=${ROWS:-200000}
REPEAT=${REPEAT:-3}
BATCH=${BATCH:-5000}
WRITERS=${WRITERS:-4}
TXN=${TXN:-1000}
SCRATCH=${SCRATCH:-.build}

echo "bench/postgres: building release (scratch $SCRATCH)" >&2
swift build -c release --scratch-path "$SCRATCH" --product speedflow >&2
BIN="$PWD/$SCRATCH/release/speedflow"

PGDIR=$(mktemp -d /tmp/speedflow-pg-bench.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  scripts/postgres stop "$PGDIR"
}
trap cleanup EXIT
DSN=$(scripts/postgres start "$PGDIR")
psql_() { psql "$DSN" -q -X -v ON_ERROR_STOP=1 "$@"; }
MAP="timestamp=ts,vehicle_speed=speed"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

new_table() {  # table mode
  psql_ -c "CREATE TABLE $1 (id bigserial PRIMARY KEY, kvfv_id text NOT NULL, ts timestamptz NOT NULL,
            speed double precision NOT NULL, lane int, plate_number text)"
  "$BIN" source postgres install-trigger --dsn "$DSN" --table "$1" --mode "$2" --apply >/dev/null 2>&1
}

insert_rows() {  # table count offset
  psql_ -c "INSERT INTO $1 (kvfv_id, ts, speed, lane, plate_number)
            SELECT 'PG' || (i % 100), now() - (i % 21600) * interval '1 second', 20 + (i * 7919 % 12000) / 100.0,
                   1 + i % 3, 'P' || i
            FROM generate_series($3 + 1, $3 + $2) i"
}

drop_table() {  # table mode
  if [ "$2" = logical ]; then psql_ -c "SELECT pg_drop_replication_slot('speedflow_$1')" >/dev/null; fi
  psql_ -c "DROP TABLE $1"
}

backlog() {  # mode → rows/s
  local mode=$1 run=$2 table="bl_${1}_$2" data
  new_table "$table" "$mode"
  insert_rows "$table" "$ROWS" 0
  data=$(mktemp -d /tmp/speedflow-bench-data.XXXXXX)
  local t0 t1
  t0=$(now)
  "$BIN" source postgres --dsn "$DSN" --table "$table" --mode "$mode" --map "$MAP" --batch-size "$BATCH" \
    --data-dir "$data" --exit-when-caught-up --log-level warning >"$data.out" 2>&1
  t1=$(now)
  grep -q "rows read $ROWS," "$data.out" || { echo "backlog $mode: unexpected summary: $(tail -2 "$data.out")" >&2; exit 1; }
  rm -rf "$data" "$data.out"
  drop_table "$table" "$mode"
  awk -v n="$ROWS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%d\n", n / (b - a)}'
}

counted() {  # port → accepted events counted by the source
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '/^speedflow_source_postgres_events_total\{.*outcome="accepted"/ {s += $NF} END {printf "%d\n", s}'
}

streaming() {  # mode run → rows/s
  local mode=$1 run=$2 table="st_${1}_$2" data port
  new_table "$table" "$mode"
  data=$(mktemp -d /tmp/speedflow-bench-data.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$BIN" serve --data-dir "$data" --port "$port" --log-level warning \
    --source-postgres-dsn "$DSN" --source-postgres-table "$table" --source-postgres-mode "$mode" \
    --source-postgres-map "$MAP" --source-postgres-batch-size "$BATCH" >"$data.out" 2>&1 &
  SERVER_PID=$!
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.05; done
  local t0 t1 per=$((ROWS / WRITERS)) pids=()
  t0=$(now)
  for w in $(seq 0 $((WRITERS - 1))); do
    (
      off=$((w * per)); done_=0
      while [ $done_ -lt $per ]; do
        insert_rows "$table" "$TXN" $((off + done_))
        done_=$((done_ + TXN))
      done
    ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  local tw expected=$((per * WRITERS))
  tw=$(now)
  until [ "$(counted "$port")" -ge "$expected" ]; do sleep 0.01; done
  t1=$(now)
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  rm -rf "$data" "$data.out"
  drop_table "$table" "$mode"
  awk -v n="$expected" -v a="$t0" -v b="$t1" -v w="$tw" 'BEGIN {printf "%d %d\n", n / (b - a), n / (w - a)}'
}

echo "bench/postgres: $ROWS rows, batch $BATCH, medians of $REPEAT ($(nproc) cores, PostgreSQL on the same machine)"
for scenario in backlog streaming; do
  [ "$WHAT" = all ] || [ "$WHAT" = "$scenario" ] || continue
  for mode in poll notify logical; do
    results=(); writers=()
    for run in $(seq 1 "$REPEAT"); do
      read -r rate wrate < <($scenario "$mode" "$run")
      results+=("$rate"); [ -n "${wrate:-}" ] && writers+=("$wrate")
    done
    extra=
    [ ${#writers[@]} -gt 0 ] && extra="; the writers alone: $(printf '%s\n' "${writers[@]}" | median) rows/s"
    printf '%-9s %-7s %8s rows/s   (runs: %s%s)\n' "$scenario" "$mode" "$(printf '%s\n' "${results[@]}" | median)" "${results[*]}" "$extra"
  done
done
