#!/usr/bin/env bash
# The issue-#10 goal: single POSTs and batches over HTTPS with credentials (--auth required, a camera token on
# every request) against plain HTTP without, same binary, rounds interleaved (see bench/tls.sh).
#   bench/secure.sh            ROUNDS=7 DURATION=5s bench/secure.sh
export SECURE_ENV="TLS=1 AUTH=1"
exec "$(dirname "$0")/tls.sh" "$@"
