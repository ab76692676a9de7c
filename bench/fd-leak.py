#!/usr/bin/env python3
"""Issue #10's fd leak, reproduced: N requests with a 300 KB header whose client then closes; count the server's sockets on its
port (ss -tanp) and its open fds (/proc/PID/fd) right after and after WAIT seconds.

    bench/fd-leak.py .build/debug/speedflow 50 20     # BIN N WAIT
"""
import os, re, socket, subprocess, sys, tempfile, time
BIN, N, WAIT = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
d = tempfile.mkdtemp()
proc = subprocess.Popen([BIN, "serve", "--data-dir", d, "--port", "0", "--log-level", "warning"], stdout=subprocess.PIPE, text=True)
port = int(re.search(r":(\d+) ", proc.stdout.readline()).group(1))
def fds(): return len(os.listdir(f"/proc/{proc.pid}/fd"))
def held():
    out = subprocess.run(["ss", "-tanp"], capture_output=True, text=True).stdout
    return [l.split()[0] for l in out.splitlines() if f"127.0.0.1:{port} " in l and f"pid={proc.pid}" in l and "LISTEN" not in l]
base = fds()
for i in range(N):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(2)
    try: s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n")
    except Exception as e: pass
    try: s.recv(100)
    except Exception: pass
    s.close()
t = time.monotonic()
h = held(); print(f"right after: {len(h)} server sockets held {sorted(set(h))}, fds +{fds() - base}")
while time.monotonic() - t < WAIT:
    time.sleep(1)
h = held(); print(f"after {WAIT:.0f} s: {len(h)} server sockets held {sorted(set(h))}, fds +{fds() - base}")
proc.terminate(); proc.wait()
