#!/usr/bin/env python3
"""Issue #12: acknowledgement → pushed latency of the live window stream (`GET /kvfv/{id}/avg-speed/stream`).

A release `speedflow serve` takes RATE events/s (NDJSON batches of BATCH over CAMERAS cameras, numbered with `seq`,
from a load process of its own, paced open-loop), while WATCHERS streams on load cameras are read and discarded
(another process) and MARKERS marker cameras each have one stream read here. A poster sends one event to one marker
at a time, every MARKER_PERIOD / MARKERS seconds; for each it notes when the `200` arrived and the count its window
must reach, and the stream reader notes when a `window` event with that window and at least that count arrived.
Latency = that event's arrival − the 200's arrival (negative when the push overtook the answer). The server polls each
view every 250 ms (the coalescing period), so about 125 ms median is the design; the figure is what is on top.

    bench/stream-latency.py                     # 3 rounds of 30 s at 20,000 events/s, a fresh server each
    ROUNDS=5 SECONDS=60 RATE=20000 bench/stream-latency.py
    SPEEDFLOW_BIN=.build/release/speedflow IDENTITY=event_id bench/stream-latency.py
"""
from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("SPEEDFLOW_BIN", str(ROOT / ".build/release/speedflow"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = float(os.environ.get("SECONDS", "30"))
RATE = float(os.environ.get("RATE", "20000"))
BATCH = int(os.environ.get("BATCH", "100"))
CAMERAS = int(os.environ.get("CAMERAS", "1000"))
SENDERS = int(os.environ.get("SENDERS", "8"))
MARKERS = int(os.environ.get("MARKERS", "20"))
MARKER_PERIOD = float(os.environ.get("MARKER_PERIOD", "1.0"))
WATCHERS = int(os.environ.get("WATCHERS", "100"))
IDENTITY = os.environ.get("IDENTITY", "seq")
WINDOW_MS = 300_000


def stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def event_line(camera: str, seq: int, ms: int, speed: float) -> str:
    ident = f'"seq":{seq}' if IDENTITY == "seq" else f'"event_id":"{camera}-{seq}"'
    return (f'{{"kvfv_id":"{camera}","timestamp":"{stamp(ms)}","vehicle_speed":{speed:.1f},'
            f'"plate_number":"A{seq % 1000:03d}BC77",{ident},"lane":{seq % 3 + 1}}}')


def post(conn: http.client.HTTPConnection, body: str) -> dict:
    conn.request("POST", "/events", body=body.encode(), headers={"Content-Type": "application/x-ndjson"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"POST /events: {resp.status} {data[:200]!r}")
    return json.loads(data)


def start_server(data_dir: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data_dir, "--port", "0", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on http://[^:/]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise SystemExit(f"{BIN} did not print its port")


def load(port: int, start_at: float, seconds: float, out) -> None:
    """SENDERS threads, each paced open-loop at RATE / BATCH / SENDERS requests per second (late ones go at once)."""
    per_thread = RATE / BATCH / SENDERS
    results = []
    lock = threading.Lock()

    def sender(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        counter = i  # events of sender i: i, i + SENDERS, ... so numbers per camera never collide
        lat, sent, k = [], 0, 0
        while True:
            due = start_at + (k + i / SENDERS) / per_thread
            if due - start_at >= seconds:
                break
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            ms = int(time.time() * 1000) - 500
            lines = []
            for _ in range(BATCH):
                cam = counter % CAMERAS
                lines.append(event_line(f"KV{cam:05d}", 1 + counter // CAMERAS, ms, 40 + (counter * 7 % 900) / 10))
                counter += SENDERS
            t = time.monotonic()
            post(conn, "\n".join(lines))
            lat.append(time.monotonic() - t)
            sent += BATCH
            k += 1
        with lock:
            results.append((sent, lat))

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(x for _, l in results for x in l)
    out.put({"sent": sum(s for s, _ in results), "p50": lat[len(lat) // 2] * 1000, "p99": lat[int(len(lat) * 0.99)] * 1000})


def open_stream(port: int, camera: str, from_ms: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /kvfv/{camera}/avg-speed/stream?interval=5m&from={stamp(from_ms)} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    return s


def watchers(port: int, cameras: list[str], from_ms: int, stop, ready) -> None:
    """Streams on load cameras, read and thrown away (what dashboards cost the server)."""
    sel = selectors.DefaultSelector()
    socks = [open_stream(port, c, from_ms) for c in cameras]
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(0.2):
            try:
                key.fileobj.recv(65536)
            except BlockingIOError:
                pass


class StreamReader(threading.Thread):
    """One marker's stream: `(arrival, window start, count)` of every window in every event, in arrival order."""

    def __init__(self, port: int, camera: str, from_ms: int):
        super().__init__(daemon=True)
        self.sock = open_stream(port, camera, from_ms)
        self.seen: list[tuple[float, str, int]] = []
        self.stopped = False

    def run(self) -> None:
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += self.sock.recv(65536)
        head, raw = raw.split(b"\r\n\r\n", 1)
        chunked = b"chunked" in head.lower()
        text = b""
        while not self.stopped:
            # De-chunk what is buffered, then cut complete SSE events (blank-line separated).
            if chunked:
                while True:
                    nl = raw.find(b"\r\n")
                    if nl < 0:
                        break
                    size = int(raw[:nl].split(b";")[0], 16)
                    if len(raw) < nl + 2 + size + 2:
                        break
                    text += raw[nl + 2:nl + 2 + size]
                    raw = raw[nl + 2 + size + 2:]
            else:
                text, raw = text + raw, b""
            now = time.monotonic()
            while b"\n\n" in text:
                ev, text = text.split(b"\n\n", 1)
                name, data = "", b""
                for line in ev.split(b"\n"):
                    if line.startswith(b"event: "):
                        name = line[7:].decode()
                    elif line.startswith(b"data: "):
                        data = line[6:]
                if name == "window":
                    w = json.loads(data)
                    self.seen.append((now, w["start"], w["count"]))
                elif name == "snapshot":
                    for w in json.loads(data)["windows"]:
                        self.seen.append((now, w["start"], w["count"]))
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            raw += chunk


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def one_round(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="speedflow-stream-") as data:
        proc, port = start_server(data)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            now_ms = int(time.time() * 1000)
            # Every camera exists before its stream opens (a stream of an unknown camera is a 404).
            for i in range(0, CAMERAS, 500):
                post(conn, "\n".join(event_line(f"KV{c:05d}", 0, now_ms - 1000, 80) for c in range(i, min(CAMERAS, i + 500))))
            markers = [f"MK{m:03d}" for m in range(MARKERS)]
            counts: dict[tuple[str, str], int] = {}
            next_seq = {m: 1 for m in markers}
            post(conn, "\n".join(event_line(m, 0, now_ms - 1000, 80) for m in markers))
            for m in markers:
                w = stamp((now_ms - 1000) // WINDOW_MS * WINDOW_MS).replace(".000Z", "Z")
                counts[(m, w)] = 1
            from_ms = (now_ms // WINDOW_MS - 2) * WINDOW_MS
            readers = [StreamReader(port, m, from_ms) for m in markers]
            for r in readers:
                r.start()
            stop, ready = mp.Event(), mp.Event()
            watch = mp.Process(target=watchers, args=(port, [f"KV{c:05d}" for c in range(min(WATCHERS, CAMERAS))], from_ms, stop, ready))
            watch.start()
            ready.wait(30)
            time.sleep(0.5)
            results = mp.Queue()
            start_at = time.monotonic() + 0.5
            loader = mp.Process(target=load, args=(port, start_at, SECONDS, results))
            loader.start()
            acks = []  # (ack time, marker, window start, count it must reach)
            k = 0
            while True:
                due = start_at + 1 + k * MARKER_PERIOD / MARKERS
                if due > start_at + SECONDS - 0.5:
                    break
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                m = markers[k % MARKERS]
                ms = int(time.time() * 1000) - 200
                w = stamp(ms // WINDOW_MS * WINDOW_MS).replace(".000Z", "Z")
                answer = post(conn, event_line(m, next_seq[m], ms, 90))
                t_ack = time.monotonic()
                assert answer["accepted"] == 1, answer
                next_seq[m] += 1
                counts[(m, w)] = counts.get((m, w), 0) + 1
                acks.append((t_ack, m, w, counts[(m, w)]))
                k += 1
            load_stats = results.get()
            loader.join()
            time.sleep(1.0)  # the last pushes
            stop.set()
            watch.join()
            for r in readers:
                r.stopped = True
            stats = json.loads(urlopen_text(port, "/stats"))
        finally:
            proc.terminate()
            proc.wait()
        by_marker = {m: r.seen for m, r in zip(markers, readers)}
        latencies, missing = [], 0
        for t_ack, m, w, want in acks:
            hit = next((t for t, start, count in by_marker[m] if start == w and count >= want), None)
            if hit is None:
                missing += 1
            else:
                latencies.append((hit - t_ack) * 1000)
        return {"round": n, "samples": len(latencies), "missing": missing,
                "p50": percentile(latencies, 0.5), "p90": percentile(latencies, 0.9), "p99": percentile(latencies, 0.99),
                "max": max(latencies), "negative": sum(1 for x in latencies if x < 0),
                "load_events_per_s": load_stats["sent"] / SECONDS, "load_p50": load_stats["p50"], "load_p99": load_stats["p99"],
                "accepted": stats["accepted_total"], "duplicates": stats["duplicates_total"], "latencies": latencies}


def urlopen_text(port: int, path: str) -> str:
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", path)
    return c.getresponse().read().decode()


def main() -> None:
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}; {RATE:.0f} events/s in batches of "
          f"{BATCH} over {CAMERAS} cameras ({IDENTITY}), {SENDERS} senders; {MARKERS} marker streams, one marker event every "
          f"{MARKER_PERIOD / MARKERS * 1000:.0f} ms; {WATCHERS} more streams on load cameras; {ROUNDS} rounds of {SECONDS:.0f} s")
    rounds = []
    for n in range(1, ROUNDS + 1):
        r = one_round(n)
        rounds.append(r)
        print(f"round {n}: ack→pushed p50 {r['p50']:.1f} ms, p90 {r['p90']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms "
              f"({r['samples']} samples, {r['missing']} never pushed, {r['negative']} pushed before the 200); load "
              f"{r['load_events_per_s']:,.0f} events/s sent, POST p50 {r['load_p50']:.1f} ms, p99 {r['load_p99']:.1f} ms; "
              f"server accepted {r['accepted']:,}, duplicates {r['duplicates']}", flush=True)
    pooled = [x for r in rounds for x in r["latencies"]]
    print(f"medians of {ROUNDS} rounds: p50 {statistics.median(r['p50'] for r in rounds):.1f} ms, "
          f"p99 {statistics.median(r['p99'] for r in rounds):.1f} ms; all {len(pooled)} samples: p50 {percentile(pooled, 0.5):.1f} ms, "
          f"p99 {percentile(pooled, 0.99):.1f} ms; load {statistics.median(r['load_events_per_s'] for r in rounds):,.0f} events/s")


if __name__ == "__main__":
    main()
