#!/usr/bin/env python3
"""`GET /kvfv` on a large fleet (issue #10): 200,000 cameras (one event each, posted in random order), then the
time of one page — the first, one in the middle (`after`), a prefix, 1,000 at once, a health filter that matches
nothing (10,000 records checked) — over HTTP from one keep-alive client; median and p99 of REPEAT requests each.

    bench/kvfv-page.py                                    # release build, 200,000 cameras, 200 requests per case
    CAMERAS=50000 SPEEDFLOW_BIN=.build/debug/speedflow bench/kvfv-page.py
"""
from __future__ import annotations

import json
import os
import random
import re
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("SPEEDFLOW_BIN", str(ROOT / ".build/release/speedflow"))
CAMERAS = int(os.environ.get("CAMERAS", "200000"))
REPEAT = int(os.environ.get("REPEAT", "200"))


def request(sock: socket.socket, raw: bytes) -> tuple[int, bytes]:
    sock.sendall(raw)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(v) for k, _, v in (l.partition(b":") for l in head.split(b"\r\n")[1:])
                  if k.strip().lower() == b"content-length")
    while len(body) < length:
        body += sock.recv(1 << 20)
    return int(head.split(b" ")[1]), body


def main() -> None:
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} missing: swift build -c release --product speedflow")
    with tempfile.TemporaryDirectory(prefix="speedflow-kvfv-") as d:
        proc = subprocess.Popen([BIN, "serve", "--data-dir", d, "--port", "0", "--log-level", "warning"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = int(re.search(r"listening on http://[^:/]+:(\d+)", proc.stdout.readline()).group(1))
            sock = socket.create_connection(("127.0.0.1", port))
            names = [f"KV{i:06d}" for i in range(CAMERAS)]
            random.Random(10).shuffle(names)
            ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
            t0 = time.monotonic()
            for i in range(0, CAMERAS, 10_000):
                body = "\n".join(json.dumps({"kvfv_id": n, "timestamp": ts, "vehicle_speed": 80, "event_id": "e"})
                                 for n in names[i:i + 10_000]).encode()
                status, _ = request(sock, b"POST /events HTTP/1.1\r\nHost: b\r\nContent-Type: application/x-ndjson\r\n"
                                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                assert status == 200, status
            print(f"{CAMERAS:,} cameras posted in {time.monotonic() - t0:.1f} s")
            middle = f"KV{CAMERAS // 2:06d}"
            cases = [("first page (limit=100)", "/kvfv"), ("middle page (after=…)", f"/kvfv?after={middle}"),
                     ("prefix=KV00012 (10 ids)", "/kvfv?prefix=KV00012"), ("limit=1000", "/kvfv?limit=1000"),
                     ("health=silent (none; 10,000 checked)", "/kvfv?health=silent")]
            for label, path in cases:
                times, size = [], 0
                for _ in range(REPEAT):
                    s = time.perf_counter()
                    status, body = request(sock, f"GET {path} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
                    times.append((time.perf_counter() - s) * 1000)
                    assert status == 200, (status, body[:200])
                    size = len(body)
                times.sort()
                print(f"  {label:38} median {statistics.median(times):7.2f} ms  p99 {times[int(len(times) * 0.99) - 1]:7.2f} ms"
                      f"  {size / 1024:8.1f} KiB  ({len(json.loads(body)['cameras'])} cameras, "
                      f"total {json.loads(body)['total']:,})")
        finally:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
