#!/usr/bin/env bash
# Long run of the body fuzzer (scripts/fuzz: EventBatch.decode fast path vs the JSONDecoder oracle, gzip): prints
# figures — executions, execs/s, coverage, corpus growth, peak RSS — and fails like scripts/fuzz on a finding.
#
#   bench/fuzz.sh                     # 30 minutes
#   DURATION=2h bench/fuzz.sh         # s, m or h (or plain seconds)
#   NICE=0 bench/fuzz.sh              # at normal priority (default: nice 10, one core, so it can run alongside)
#
# Keeps growing the corpus in .build-fuzz/corpus across runs, minimised after each run (libFuzzer -merge=1;
# FUZZ_FRESH=1 starts over); every other FUZZ_* variable of scripts/fuzz applies. Uses one libFuzzer process,
# i.e. one core.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30m}
case "$DURATION" in
  *h) seconds=$(( ${DURATION%h} * 3600 )) ;;
  *m) seconds=$(( ${DURATION%m} * 60 )) ;;
  *s) seconds=${DURATION%s} ;;
  *) seconds=$DURATION ;;
esac
NICE=${NICE:-10}

# What is fuzzed, taken now: the tree may move on while the run lasts.
model=${FUZZ_MODEL:-Sources/SpeedflowModel}
if [ -z "${FUZZ_MODEL:-}" ]; then
  what="model at $(git log -1 --format=%h -- Sources/SpeedflowModel)$([ -z "$(git status --porcelain -- Sources/SpeedflowModel)" ] || echo ' + local changes')"
else
  what="model sources in $model"
fi
corpus=${FUZZ_OUT:-.build-fuzz}/corpus
before=$(find "$corpus" -type f 2>/dev/null | wc -l)
echo "bench/fuzz: ${seconds}s of fuzzing, corpus starts with $before grown inputs + $(ls Tests/Fuzz/corpus | wc -l) seeds"
start=$(date +%s)
log=${FUZZ_OUT:-.build-fuzz}/last-run.log
rm -f "$log"
status=0
nice -n "$NICE" scripts/fuzz "$seconds" || status=$?
elapsed=$(( $(date +%s) - start ))
[ -f "$log" ] || { echo "bench/fuzz: scripts/fuzz did not get to fuzzing (exit $status)"; exit $status; }

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
# Fork mode (FUZZ_ARGS=-fork=N) prints no stat:: lines: take the last progress line "#N: cov: ... exec/s: R".
if [ -z "$execs" ]; then execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#'); fi
if [ -z "$rate" ] && [ -n "$execs" ] && [ "$seconds" -gt 0 ]; then rate="$(( execs / seconds )) (executions / fuzzing time)"; fi
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
slowest=$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log" | tail -1)
cov=$(grep -E '^#[0-9]+' "$log" | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+(/[0-9]+[a-zA-Z]*)?' | tail -1 || true)
crashes=$(grep -oE 'oom/timeout/crash: [0-9/]+' "$log" | tail -1 || true)
after=$(find "$corpus" -type f | wc -l)
echo
echo "bench/fuzz: figures ($(date -u +%Y-%m-%dT%H:%MZ), $what, $(nproc) cores, nice $NICE)"
printf '  %-28s %s\n' \
  "wall time" "${elapsed}s (incl. build)" \
  "executions" "${execs:-?}" \
  "execs/s" "${rate:-?}" \
  "coverage (edges, features)" "${cov:-?}" \
  "corpus (grown)" "$before -> $after inputs" \
  "slowest input" "$([ -n "$slowest" ] && echo "${slowest}s" || echo 'n/a (fork mode)')" \
  "peak RSS" "$([ -n "$rss" ] && echo "$rss MB" || echo 'n/a (fork mode)')" \
  "findings (fork mode)" "${crashes:-n/a} (saved in ${FUZZ_OUT:-.build-fuzz}/artifacts/)" \
  "result" "$([ $status = 0 ] && echo 'no finding' || echo "FINDING (exit $status), see above")"

# A long run leaves many inputs that later ones made redundant; keep the corpus small for the next (short) run:
# libFuzzer's merge keeps a minimal subset with the same coverage.
if [ $status = 0 ] && [ "$after" -gt 2000 ]; then
  bin=${FUZZ_OUT:-.build-fuzz}/body-fuzzer
  rm -rf "$corpus.min" && mkdir -p "$corpus.min"
  if SWIFT_BACKTRACE=enable=no nice -n "$NICE" "$bin" -merge=1 -timeout=5 -rss_limit_mb=2048 -max_len=8192 \
      "$corpus.min" "$corpus" >"${FUZZ_OUT:-.build-fuzz}/merge.log" 2>&1; then
    rm -rf "$corpus" && mv "$corpus.min" "$corpus"
    echo "bench/fuzz: corpus minimised to $(find "$corpus" -type f | wc -l) inputs (same coverage)"
  fi
fi
exit $status
