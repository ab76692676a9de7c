#!/usr/bin/env bash
# Issue #12: dedup state per event, seq ledgers vs event_id identities (`speedflow-bench dedup`: the real
# BucketTable + SQLiteStore, flushed and evicted as the aggregator does, each camera paced at EVENTS_PER_DAY).
# For each identity kind, loss share and scale: events accepted, in-memory dedup bytes and the store's bytes per
# table (SQLite `dbstat`), per event. Several scales show the figures are linear (so they extrapolate to 1 M/day).
#
#   bench/dedup.sh                                   # 1,000 cameras × 2,500 / 5,000 / 10,000 events; loss 0, 0.1%, 1%
#   CAMERAS=1000 SIZES="5000" LOSSES="0 0.01" bench/dedup.sh
#   CAMERAS=10 SIZES="200000" bench/dedup.sh        # few cameras, past several 65,536-number ledger chunks
set -euo pipefail
cd "$(dirname "$0")/.."
CAMERAS=${CAMERAS:-1000}
SIZES=${SIZES:-2500 5000 10000}
LOSSES=${LOSSES:-0 0.001 0.01}
EVENTS_PER_DAY=${EVENTS_PER_DAY:-1000000}
SCRATCH=${SCRATCH:-.build}
[ "${SKIP_BUILD:-0}" = 1 ] || swift build -c release --scratch-path "$SCRATCH" --product speedflow-bench >&2
BENCH=$SCRATCH/release/speedflow-bench
WORK=$(mktemp -d /tmp/speedflow-dedup.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SUMMARY='
import json, sys
r = json.loads(sys.stdin.read()); n = r["accepted"]; d = r["disk"]
# Each kind counts its own tables (an empty table still holds one 4 KiB page).
dedup = d["sequence_chunk"] if r["identity"] == "seq" else d["dedup_chunk"] + d["dedup_chunk_key"]
print(f"{r['"'"'identity'"'"']:8} {r['"'"'cameras'"'"']} cameras x {r['"'"'events_per_camera'"'"']} events, loss {r['"'"'loss'"'"']}: {n} accepted; "
      f"disk {dedup / n:.3f} B/event (dedup_chunk {d['"'"'dedup_chunk'"'"']} + index {d['"'"'dedup_chunk_key'"'"']}, sequence_chunk {d['"'"'sequence_chunk'"'"']} bytes; "
      f"rows {r['"'"'rows'"'"']}); memory {r['"'"'dedup_structure_bytes'"'"'] / n:.2f} B/event ({r['"'"'dedup_structure_detail'"'"']}); "
      f"table heap {r['"'"'heap_table_bytes'"'"']}; hot ids {r['"'"'hot_identities'"'"']} (max {r['"'"'max_hot_identities'"'"']}), runs {r['"'"'ledger_runs'"'"']}; "
      f"apply {r['"'"'apply_s'"'"'] * 1e9 / n:.0f} ns/event, commit {r['"'"'commit_s'"'"']:.2f} s")
'
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
for size in $SIZES; do
  for loss in $LOSSES; do
    for identity in event-id seq; do
      dir=$WORK/$identity-$size-$loss
      "$BENCH" dedup --data-dir "$dir" --cameras "$CAMERAS" --events-per-camera "$size" --identity "$identity" \
        --loss "$loss" --events-per-day "$EVENTS_PER_DAY" > "$dir.json"
      python3 - "$dir.json" "$dir/store.sqlite" >> "$WORK/rows.jsonl" <<'PY'
import json, sqlite3, sys
r = json.load(open(sys.argv[1]))
db = sqlite3.connect(sys.argv[2])
sizes = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
payload = dict(db.execute("SELECT name, sum(payload) FROM dbstat GROUP BY name"))
r["disk"] = {k: sizes.get(k, 0) for k in ("dedup_chunk", "dedup_chunk_key", "sequence_chunk", "bucket", "bucket_day")}
r["disk_payload"] = {k: payload.get(k, 0) for k in ("dedup_chunk", "dedup_chunk_key", "sequence_chunk")}
r["rows"] = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("dedup_chunk", "sequence_chunk")}
print(json.dumps(r))
PY
      rm -rf "$dir"
      tail -1 "$WORK/rows.jsonl" | python3 -c "$SUMMARY"
    done
  done
done
cp "$WORK/rows.jsonl" "${OUT:-/tmp/speedflow-dedup.jsonl}"
echo "rows: ${OUT:-/tmp/speedflow-dedup.jsonl}"
