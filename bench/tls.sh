#!/usr/bin/env bash
# HTTPS against plain HTTP on the same build, in one run: `bench/run.sh ingest` with TLS=0 and TLS=1 alternately,
# ROUNDS times (each round a fresh server; wrk keeps its connections, so this is the per-request cost of TLS, plus
# one handshake per connection), then the medians of each figure with the ratio TLS/plain. The server's CPU time per
# request (from /proc) is printed too: unlike throughput, the load of a shared machine hardly moves it.
#
#   bench/tls.sh                       # 5 rounds of 5 s each
#   ROUNDS=7 DURATION=10s bench/tls.sh
#   SECURE_ENV="TLS=1 AUTH=1" bench/tls.sh   # HTTPS + credentials against plain (bench/secure.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
export DURATION=${DURATION:-5s} REPEAT=1
OUT=$(mktemp -d /tmp/speedflow-tls.XXXXXX)
swift build -c release --product speedflow >&2 && swift build -c release --product speedflow-bench >&2
for r in $(seq 1 "$ROUNDS"); do
  for side in plain tls; do
    settings=(TLS=0 AUTH=0); [ "$side" = tls ] && read -r -a settings <<< "${SECURE_ENV:-TLS=1}"
    env "${settings[@]}" bench/run.sh ingest 2>/dev/null > "$OUT/$side.$r.txt"
    grep ": median" "$OUT/$side.$r.txt" | sed "s/^/round $r $side: /"
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import re, sys, statistics
out, rounds = sys.argv[1], int(sys.argv[2])
figures = {}
for side in ("plain", "tls"):
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{side}.{r}.txt"):
            m = re.match(r"(.+?): median ([\d.]+) requests/s.*p50 ([\d.]+) ms, p99 ([\d.]+) ms.*server CPU ([\d.]+) us", line)
            if m:
                f = figures.setdefault(m.group(1), {"plain": [], "tls": []})
                f[side].append(tuple(float(m.group(i)) for i in range(2, 6)))
import os
print(f"\nmedians of {rounds} interleaved rounds (plain HTTP vs {os.environ.get('SECURE_ENV', 'TLS=1')}, same binary; 'TLS' below is that side):")
for name, f in figures.items():
    a = [statistics.median(x[i] for x in f["plain"]) for i in range(4)]
    b = [statistics.median(x[i] for x in f["tls"]) for i in range(4)]
    ratios = sorted(t[0] / p[0] for p, t in zip(f["plain"], f["tls"]))
    print(f"  {name}: plain {a[0]:.0f} req/s p50 {a[1]:.2f} ms p99 {a[2]:.2f} ms, {a[3]:.0f} us CPU/request | "
          f"TLS {b[0]:.0f} req/s p50 {b[1]:.2f} ms p99 {b[2]:.2f} ms, {b[3]:.0f} us CPU/request | "
          f"throughput TLS/plain {b[0]/a[0]:.2f} (per round {ratios[0]:.2f}-{ratios[-1]:.2f}), p99 {b[2]/a[2]:.2f}, "
          f"server CPU per request TLS/plain {b[3]/a[3]:.2f}")
PY
rm -rf "$OUT"
