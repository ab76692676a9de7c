#!/usr/bin/env bash
# How the format-4 fixture (format4/) was made: the same scenario as make-format1.sh (late, resent, invalid and
# gzip'd events for three cameras; a clean stop; more events and a kill -9, so records lie past the store's
# checkpoint) with its numbered camera FX4 (NUMBERED=1: passes with sequence numbers, a gap, resends and status
# reports on both sides of the checkpoint), run by the last format-4 release (commit 7002c28, before lanes, whole
# counts and rejection tallies: EventRecord version 4 with sequence numbers and camera reports, BucketState version
# 2, the SQLite sequence ledgers; no per-lane state, no whole-speed counts per bin, no camera_rejection table).
# Usage: make-format4.sh /path/to/speedflow-built-at-7002c28 OUTDIR
set -euo pipefail
NUMBERED=1 exec "$(dirname "$0")/make-format1.sh" "$@"
