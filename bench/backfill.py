#!/usr/bin/env python3
"""Issue #11's backfill stream against a running `serve` (writer) and `api` node (reader); prints JSON figures.

    bench/backfill.py --serve URL --api URL --events 160000 [--run-tag T] [--stop-pid PID]

The stream: 40 cameras spanning 30 h of event time, 20% of events up to 10 h late, 5% resent (half as single
events inside later batches, half as whole batches sent again), 1% invalid, each batch of 500 shuffled, posted
as NDJSON by 8 clients. Figures:
  post_s          first request to last acknowledgement
  visible_s       last acknowledgement until the api node counts every accepted event (sum of 24 h windows)
  store_rate      accepted events / (first request .. visible): what the ClickHouse path sustains end to end
With --stop-pid, SIGTERM goes to that process right after the last acknowledgement and `stop_s` is how long it
took to exit (a graceful stop with a full backlog); visibility is then not measured (the caller restarts it).
--cameras-tag and --base-ms give a second stream the first one's cameras and hours (new event ids): every late
event then lands in a bucket the store already holds; the api node must count both streams.
"""
import argparse
import http.client
import json
import os
import random
import signal
import threading
import time
import urllib.parse

HOUR = 3_600_000


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def make_stream(events, tag, cameras_tag, base_ms):
    rng = random.Random(f"{tag}/{cameras_tag}/{events}")
    cameras = [f"BF{cameras_tag}{c:03d}" for c in range(40)]
    span = 30 * HOUR
    evs = []
    for i in range(events):
        cam = cameras[i % 40]
        ts = base_ms - span + rng.randrange(span)
        evs.append({"kvfv_id": cam, "timestamp": iso(ts), "vehicle_speed": round(rng.uniform(20, 160), 1),
                    "event_id": f"{cam}-{tag}-{i}", "lane": 1 + i % 3, "_key": ts})
    # 20% arrive late: up to 10 h of event time after their place in the stream.
    for e in evs:
        if rng.random() < 0.2:
            e["_key"] += rng.randrange(1, 10 * HOUR)
    evs.sort(key=lambda e: e["_key"])
    valid = len(evs)
    lines = []
    for e in evs:
        del e["_key"]
        lines.append(json.dumps(e, separators=(",", ":")))
        if rng.random() < 0.01:  # 1% invalid: a negative speed, rejected with a reason
            bad = dict(e, vehicle_speed=-1, event_id=e["event_id"] + "-bad")
            lines.append(json.dumps(bad, separators=(",", ":")))
    batches = [lines[i:i + 500] for i in range(0, len(lines), 500)]
    # 2.5% resent as single events inside later batches, 2.5% of batches sent again later.
    for b in range(len(batches)):
        for line in list(batches[b]):
            if rng.random() < 0.025:
                later = min(len(batches) - 1, b + rng.randrange(1, 20))
                batches[later].append(line)
    for b in range(len(batches)):
        if rng.random() < 0.025:
            batches.insert(min(len(batches), b + rng.randrange(1, 20)), list(batches[b]))
    for batch in batches:
        rng.shuffle(batch)
    return cameras, valid, [("\n".join(b) + "\n").encode() for b in batches]


def post_all(url, bodies, clients=8, headers=None):
    u = urllib.parse.urlparse(url)
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    accepted = [0]
    errors = []

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        while True:
            with lock:
                if not queue:
                    return
                _, body = queue.pop(0)
            while True:
                try:
                    conn.request("POST", "/events", body, {"Content-Type": "application/x-ndjson", **(headers or {})})
                    r = conn.getresponse()
                    data = r.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
                    time.sleep(0.05)
                    continue
                if r.status == 200:
                    with lock:
                        accepted[0] += json.loads(data)["accepted"]
                    break
                if r.status in (429, 503):
                    time.sleep(0.05)
                    continue
                errors.append((r.status, data[:200]))
                break

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"backfill.py: requests failed: {errors[:3]}")
    return accepted[0]


def counted(api, cameras, base_ms):
    u = urllib.parse.urlparse(api)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    lo = (base_ms - 31 * HOUR) // (24 * HOUR) * (24 * HOUR)
    hi = (base_ms + 24 * HOUR) // (24 * HOUR) * (24 * HOUR)
    total = 0
    for cam in cameras:
        q = urllib.parse.urlencode({"from": iso(lo), "to": iso(hi), "interval": "24h"})
        conn.request("GET", f"/kvfv/{cam}/avg-speed?{q}")
        r = conn.getresponse()
        data = r.read()
        if r.status == 404:
            continue
        if r.status != 200:
            raise SystemExit(f"backfill.py: query answered {r.status}: {data[:200]}")
        total += sum(w["count"] for w in json.loads(data)["windows"])
    conn.close()
    return total


def summarize(label, lines):
    """Medians over rounds of `fresh|existing|stop` JSON triples (bench/backfill.sh's rounds), one line per scenario."""
    import statistics
    rows = [[json.loads(part) for part in line.split("|")] for line in lines if line.strip()]
    med = lambda key, i: statistics.median(r[i][key] for r in rows)
    for i, what in [(0, "fresh store"), (1, "buckets already stored")]:
        print(f"{label:6}  {what}: acked in {med('post_s', i):.2f} s, visible on the api node {med('visible_s', i):.2f} s "
              f"after the last ack, {med('store_rate', i):,.0f} events/s end to end")
    print(f"{label:6}  SIGTERM with the backlog just acknowledged: exited after {med('stop_s', 2):.2f} s")


def main():
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--summarize":
        return summarize(sys.argv[2], sys.stdin.read().splitlines())
    p = argparse.ArgumentParser()
    p.add_argument("--serve", required=True)
    p.add_argument("--api", required=True)
    p.add_argument("--events", type=int, default=160_000)
    p.add_argument("--run-tag", default="A", help="event ids are unique per run tag")
    p.add_argument("--cameras-tag", default=None, help="camera ids (default: the run tag); a second run over the same cameras and hours reads buckets back")
    p.add_argument("--base-ms", type=int, default=int(time.time() * 1000) - 60_000)
    p.add_argument("--stop-pid", type=int, default=None)
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()

    cameras, _, bodies = make_stream(a.events, a.run_tag, a.cameras_tag or a.run_tag, a.base_ms)
    before = 0 if a.stop_pid else counted(a.api, cameras, a.base_ms)
    started = time.monotonic()
    accepted = post_all(a.serve, bodies)
    acked = time.monotonic()
    out = {"events": a.events, "accepted": accepted, "requests": len(bodies), "post_s": round(acked - started, 3),
           "ack_rate": round(accepted / (acked - started))}
    if a.stop_pid:
        os.kill(a.stop_pid, signal.SIGTERM)
        while True:
            try:
                os.kill(a.stop_pid, 0)
            except ProcessLookupError:
                break
            # A zombie (our parent has not reaped it yet) counts as exited.
            try:
                with open(f"/proc/{a.stop_pid}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        break
            except FileNotFoundError:
                break
            time.sleep(0.01)
        out["stop_s"] = round(time.monotonic() - acked, 3)
        print(json.dumps(out))
        return
    want = before + accepted
    while True:
        got = counted(a.api, cameras, a.base_ms)
        now = time.monotonic()
        if got == want:
            break
        if got > want:
            raise SystemExit(f"backfill.py: the api node counts {got} events, more than the {want} accepted")
        if now - acked > a.timeout:
            raise SystemExit(f"backfill.py: after {a.timeout} s the api node counts {got} of {want}")
        time.sleep(0.1)
    out["visible_s"] = round(now - acked, 3)
    out["store_rate"] = round(accepted / (now - started))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
