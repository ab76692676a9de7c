#!/usr/bin/env bash
# How the format-3 fixture (format3/) was made: the same scenario as make-format1.sh (late, resent, invalid and
# gzip'd events for three cameras; a clean stop; more events and a kill -9, so records lie past the store's
# checkpoint), run by the last format-3 release (commit 8689e53, before sequence numbers: EventRecord version 3,
# BucketState version 1, no sequence ledger tables).
# Usage: make-format3.sh /path/to/speedflow-built-at-8689e53 OUTDIR
set -euo pipefail
exec "$(dirname "$0")/make-format1.sh" "$@"
