#!/usr/bin/env bash
# The benchmark driver under a shell name: see bench/README.md.
#   bench/run.sh            full run
#   bench/run.sh --quick    smoke run (exits non-zero if any scenario fails)
exec python3 "$(dirname "$0")/bench.py" "$@"
