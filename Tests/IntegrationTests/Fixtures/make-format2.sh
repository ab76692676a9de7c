#!/usr/bin/env bash
# How the format-2 fixture (format2/) was made: the same scenario as make-format1.sh (late, resent, invalid and
# gzip'd events for three cameras; a clean stop; more events and a kill -9, so records lie past the store's
# checkpoint), run by the last format-2 release (commit 4de73e9, before log records named their writer).
# Usage: make-format2.sh /path/to/speedflow-built-at-4de73e9 OUTDIR
set -euo pipefail
exec "$(dirname "$0")/make-format1.sh" "$@"
