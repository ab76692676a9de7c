#!/usr/bin/env python3
# The acknowledged mark's cost per group commit, on this disk: append + fdatasync, with and without first rewriting a
# 24-byte header slot at the start of the same file (what SegmentLog does since format 2). Side by side, repeated;
# medians and the ratio. Usage: bench/fsync-mark.py [rounds]
import os, time, statistics, sys
def run(mark, n=3000, rec=300):
    path = os.path.join(os.environ.get("BENCH_DIR", "."), f"fsync-bench-{int(mark)}.dat")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, b"\0" * 64, 0); os.fsync(fd)
    pos = 64; payload = b"x" * rec
    t = time.perf_counter()
    for i in range(n):
        if mark: os.pwrite(fd, i.to_bytes(24, "little"), 8 + 24 * (i % 2))
        os.pwrite(fd, payload, pos); pos += rec
        os.fdatasync(fd)
    dt = time.perf_counter() - t
    os.close(fd); os.unlink(path)
    return n / dt
res = {False: [], True: []}
for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
    for mark in (False, True):
        res[mark].append(run(mark))
for mark in (False, True):
    print(("with acked mark" if mark else "records only   "), "fdatasync'd commits/s: median %.0f  runs %s" % (statistics.median(res[mark]), [round(x) for x in res[mark]]))
print("ratio %.3f" % (statistics.median(res[True]) / statistics.median(res[False])))
