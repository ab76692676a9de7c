#!/usr/bin/env python3
"""A normal client's latency with and without slow clients (issue #10): 2,000 idle connections and 200 that
trickle a request head a byte every 100 ms (each replaced as soon as the server closes it, so 200 trickle all
the time), against one client doing keep-alive `GET /health` and single-event `POST /events` back to back.

    bench/slow-clients.py                      # release build, 5 rounds of 10 s + 10 s
    ROUNDS=3 SECONDS=5 SPEEDFLOW_BIN=.build/debug/speedflow bench/slow-clients.py

Each round starts a fresh `speedflow serve` (default connection limits) on a free port, measures the client
alone for SECONDS, then with the slow clients for SECONDS. The slow clients run in a process of their own so the
measuring client is not slowed by them in Python (both share the machine's cores with the server, which a remote
attacker would not: the figures are an upper bound of the harm). Prints p50/p99 per phase, the medians over the
rounds and the ratio loaded/unloaded (goal: p99 within 2x).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("SPEEDFLOW_BIN", str(ROOT / ".build/release/speedflow"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SECONDS = float(os.environ.get("SECONDS", "10"))
IDLE = int(os.environ.get("IDLE", "2000"))
TRICKLING = int(os.environ.get("TRICKLING", "200"))


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


def slow_clients(port: int, ready, stop) -> None:
    """The attacker: IDLE silent connections and TRICKLING ones trickling a head, replaced when closed."""
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE)]
    def trickler():
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        s.send(b"GET /health HTTP/1.1\r\n")
        return s
    trickling = [trickler() for _ in range(TRICKLING)]
    ready.set()
    replaced = 0
    while not stop.is_set():
        for i, s in enumerate(trickling):
            try:
                try:
                    if s.recv(65536) == b"":  # non-blocking: b"" = closed by the server, else its 408
                        raise ConnectionError
                except BlockingIOError:
                    pass
                s.send(b"x")
            except (ConnectionError, OSError):
                s.close()
                trickling[i] = trickler()
                replaced += 1
        time.sleep(0.1)
    alive = 0
    for s in idle:  # the idle ones must still be held (within the 60 s idle timeout), or they were no load
        try:
            s.setblocking(False)
            alive += s.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for s in idle + trickling:
        s.close()
    print(f"    (slow clients: {alive} of {IDLE} idle connections still open at the end)", flush=True)
    print(f"    (slow clients: {replaced} trickling connections closed by the server and replaced)", flush=True)


def request(sock: socket.socket, raw: bytes) -> int:
    sock.sendall(raw)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1])


def measure(port: int, seconds: float) -> dict[str, list[float]]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    health = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
    lat = {"health": [], "post": []}
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 5)) + "Z"
        body = json.dumps({"kvfv_id": f"KV{n % 100:05d}", "timestamp": ts, "vehicle_speed": 80.5,
                           "event_id": f"bench-{os.getpid()}-{n}"}).encode()
        post = b"POST /events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: " + \
            str(len(body)).encode() + b"\r\n\r\n" + body
        for kind, raw in (("health", health), ("post", post)):
            t0 = time.perf_counter()
            status = request(sock, raw)
            lat[kind].append((time.perf_counter() - t0) * 1000)
            assert status == 200, status
        n += 1
    sock.close()
    return lat


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1)]


def main() -> None:
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} missing: swift build -c release --product speedflow")
    rows = []
    for r in range(ROUNDS):
        with tempfile.TemporaryDirectory(prefix="speedflow-slow-") as d:
            proc, port = start_server(d)
            try:
                base = measure(port, SECONDS)
                ready, stop = mp.Event(), mp.Event()
                attacker = mp.Process(target=slow_clients, args=(port, ready, stop))
                attacker.start()
                if not ready.wait(120):
                    raise SystemExit("slow clients did not connect")
                time.sleep(1)
                loaded = measure(port, SECONDS)
                stop.set()
                attacker.join(30)
            finally:
                proc.terminate()
                proc.wait(30)
        row = {}
        for kind in ("health", "post"):
            row[kind] = (pct(base[kind], 50), pct(base[kind], 99), pct(loaded[kind], 50), pct(loaded[kind], 99),
                         len(base[kind]), len(loaded[kind]))
        rows.append(row)
        for kind, v in row.items():
            print(f"round {r + 1} {kind:6}: alone p50 {v[0]:.3f} ms p99 {v[1]:.3f} ms ({v[4]} req) | "
                  f"with {IDLE} idle + {TRICKLING} trickling p50 {v[2]:.3f} ms p99 {v[3]:.3f} ms ({v[5]} req)",
                  flush=True)
    print(f"\nmedians of {ROUNDS} rounds ({SECONDS:g} s each phase):")
    for kind in ("health", "post"):
        med = [statistics.median(row[kind][i] for row in rows) for i in range(4)]
        # Paired: each round's loaded phase against its own unloaded phase right before it, so the shared
        # machine's noise (other builds) falls on both; the median of those ratios is the figure.
        p99 = statistics.median(row[kind][3] / row[kind][1] for row in rows)
        p50 = statistics.median(row[kind][2] / row[kind][0] for row in rows)
        print(f"  {kind:6}: alone p50 {med[0]:.3f} ms, p99 {med[1]:.3f} ms; loaded p50 {med[2]:.3f} ms, "
              f"p99 {med[3]:.3f} ms; median of the rounds' ratios loaded/alone: p50 {p50:.2f}x, p99 {p99:.2f}x "
              f"(p99 ratios: {', '.join(f'{row[kind][3] / row[kind][1]:.2f}' for row in rows)})")


if __name__ == "__main__":
    sys.exit(main())
