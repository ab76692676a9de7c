#!/usr/bin/env bash
# Compares two checkouts side by side on this noisy machine: runs `bench/run.sh WHAT` in A and in B
# alternately, ROUNDS times (each its own release build, built first), and prints every round and the medians
# of each figure with the ratio B/A. Interleaving spreads the machine's noise over both.
#
#   bench/compare.sh /path/to/old /path/to/new [ingest|query]
#   ROUNDS=6 DURATION=5s bench/compare.sh ../old . ingest
set -euo pipefail
A=$(cd "$1" && pwd); B=$(cd "$2" && pwd); WHAT=${3:-ingest}
ROUNDS=${ROUNDS:-5}
export DURATION=${DURATION:-5s} REPEAT=1
OUT=$(mktemp -d /tmp/speedflow-compare.XXXXXX)
for dir in "$A" "$B"; do
  (cd "$dir" && swift build -c release --product speedflow >&2 && swift build -c release --product speedflow-bench >&2)
done
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    dir=$A; [ "$side" = B ] && dir=$B
    (cd "$dir" && bench/run.sh "$WHAT" 2>/dev/null) > "$OUT/$side.$r.txt"
    grep ": median" "$OUT/$side.$r.txt" | sed "s/^/round $r $side: /"
  done
done
python3 - "$OUT" "$ROUNDS" "$A" "$B" <<'PY'
import re, sys, statistics, glob
out, rounds = sys.argv[1], int(sys.argv[2])
figures = {}
for side in "AB":
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{side}.{r}.txt"):
            m = re.match(r"(.+?): median ([\d.]+) requests/s.*p50 ([\d.]+) ms, p99 ([\d.]+) ms", line)
            if m:
                f = figures.setdefault(m.group(1), {"A": [], "B": []})
                f[side].append((float(m.group(2)), float(m.group(3)), float(m.group(4))))
print(f"\nmedians of {rounds} interleaved rounds (A = {sys.argv[3]}, B = {sys.argv[4]}):")
for name, f in figures.items():
    a = [statistics.median(x[i] for x in f["A"]) for i in range(3)]
    b = [statistics.median(x[i] for x in f["B"]) for i in range(3)]
    print(f"  {name}: A {a[0]:.0f} req/s p99 {a[2]:.2f} ms | B {b[0]:.0f} req/s p99 {b[2]:.2f} ms | "
          f"throughput B/A {b[0]/a[0]:.2f}, p99 B/A {b[2]/a[2]:.2f}")
PY
rm -rf "$OUT"
