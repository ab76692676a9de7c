#!/usr/bin/env bash
# How the format-1 fixture (format1/) was made: a data directory written by the release before data-dir
# format versioning (commit a01ce8f), kept so every later format change proves it still upgrades exactly.
# Usage: make-format1.sh /path/to/speedflow-built-at-a01ce8f OUTDIR
# It posts late, resent, invalid and gzip'd events for three cameras, stops cleanly (store checkpointed),
# restarts with a 1 h flush interval, posts more and kill -9s it, so the fixture holds both counted log
# records and records past the store's checkpoint (replayed on the next start). expected/*.json are what
# a01ce8f answers on a copy of that directory after its own replay.
# With NUMBERED=1 (for releases that know sequence numbers: format 4 on) camera FX4 also numbers its passes:
# 0-299 but 120-129 (a gap), the first 50 sent twice, and a status report of 359 before the clean stop; 300-329,
# 125-127 (late, into the gap) and a report of 369 after it, so numbered records and reports are both counted and
# replayed; expected/ then also has FX4's windows and FX4-gaps.json.
set -euo pipefail
bin=$1; out=$2
rm -rf "$out"; mkdir -p "$out/expected"
data=$(mktemp -d)/data
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start() { "$bin" serve --data-dir "$data" --port "$port" "$@" >>"$out/../make-format1.log" 2>&1 & pid=$!
  for _ in $(seq 200); do curl -sf "localhost:$port/health" >/dev/null && return; sleep 0.1; done; echo "no start"; exit 1; }
post() { curl -sf "localhost:$port/events" "$@"; echo; }
events() { # camera count first_minutes_ago spread_minutes id_prefix
  python3 - "$@" <<'PY'
import sys, json, datetime, random
cam, n, ago, spread, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rnd = random.Random(f"{cam}-{prefix}")
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
out = []
for i in range(n):
    t = now - datetime.timedelta(minutes=ago) + datetime.timedelta(seconds=rnd.randrange(spread * 60))
    e = {"kvfv_id": cam, "timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
         "vehicle_speed": round(rnd.uniform(30, 140), 1), "event_id": f"{cam}-{prefix}-{i:06d}",
         "plate_number": f"A{i%1000:03d}БВ77", "lane": 1 + i % 3}
    if i % 97 == 5: e["vehicle_speed"] = 900          # speed_out_of_range
    if i % 89 == 7: del e["event_id"]                  # content identity
    out.append(e)
print(json.dumps(out))
PY
}
numbered() { # first last [skip_first skip_last]: FX4's passes with those numbers, 20 s apart by number, as NDJSON
  python3 - "$t0" "$@" <<'PY'
import sys, json, datetime, random
t0, first, last = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
skip = range(int(sys.argv[4]), int(sys.argv[5]) + 1) if len(sys.argv) > 5 else range(0)
for i in range(first, last + 1):
    if i in skip: continue
    rnd = random.Random(f"FX4-{i}")
    t = datetime.datetime.fromtimestamp(t0 + 20 * i, datetime.timezone.utc)
    print(json.dumps({"kvfv_id": "FX4", "timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "seq": i,
                      "vehicle_speed": round(rnd.uniform(30, 140), 1), "lane": 1 + i % 2}))
PY
}
report() { # seq: FX4's status report of having recorded up to that number, the newest at its pass's time
  curl -sf "localhost:$port/kvfv/FX4/status" -d "{\"seq\":$1,\"timestamp\":\"$(date -u -d "@$((t0 + 20 * $1))" +%Y-%m-%dT%H:%M:%SZ)\"}"; echo
}
t0=$(( $(date +%s) - 125 * 60 )); cameras="FX1 FX2 FX3${NUMBERED:+ FX4}"
start
for cam in FX1 FX2 FX3; do
  events $cam 800 120 110 a > /tmp/fx-$cam-a.json
  post -d @/tmp/fx-$cam-a.json
  post -d @/tmp/fx-$cam-a.json                                        # resent batch: all duplicates
  events $cam 300 600 60 late > /tmp/fx-$cam-late.json                # 9-10 hours late
  gzip -c /tmp/fx-$cam-late.json | post -H 'Content-Encoding: gzip' --data-binary @-
done
if [ -n "${NUMBERED:-}" ]; then
  numbered 0 299 120 129 | post -H 'Content-Type: application/x-ndjson' --data-binary @-
  numbered 0 49 | post -H 'Content-Type: application/x-ndjson' --data-binary @-   # resent: all duplicates
  report 359
fi
kill -TERM $pid; wait $pid || true
start --flush-interval 1h
for cam in FX1 FX2 FX3; do
  events $cam 200 30 25 b | python3 -c 'import sys,json; [print(json.dumps(e)) for e in json.load(sys.stdin)]' > /tmp/fx-$cam-b.ndjson
  post -H 'Content-Type: application/x-ndjson' --data-binary @/tmp/fx-$cam-b.ndjson
  post -d @/tmp/fx-$cam-a.json >/dev/null                         # resent again, after the checkpoint
done
if [ -n "${NUMBERED:-}" ]; then
  numbered 300 329 | post -H 'Content-Type: application/x-ndjson' --data-binary @-
  numbered 125 127 | post -H 'Content-Type: application/x-ndjson' --data-binary @-  # late, into the gap
  report 369
fi
kill -KILL $pid; wait $pid 2>/dev/null || true
cp -a "$data" "$out/data"
# What a01ce8f answers after replaying that directory (on a copy, so the fixture keeps the unreplayed records).
cp -a "$data" "$data.replay"; data="$data.replay"
start
from=$(date -u -d '-12 hours' +%Y-%m-%dT%H:00:00Z); to=$(date -u -d '+1 hour' +%Y-%m-%dT%H:00:00Z)
echo "{\"from\":\"$from\",\"to\":\"$to\"}" > "$out/expected/range.json"
for cam in $cameras; do
  curl -sf "localhost:$port/kvfv/$cam/avg-speed?from=$from&to=$to&interval=5m" > "$out/expected/$cam-5m.json"
  curl -sf "localhost:$port/kvfv/$cam/avg-speed?from=$from&to=$to&interval=1h" > "$out/expected/$cam-1h.json"
done
[ -z "${NUMBERED:-}" ] || curl -sf "localhost:$port/kvfv/FX4/gaps" > "$out/expected/FX4-gaps.json"
kill -TERM $pid; wait $pid || true
rm -f "$out/data/log/LOCK"
echo "fixture written to $out"
