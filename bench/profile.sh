#!/usr/bin/env bash
# Where a server binary spends its CPU under the notice load: a sampled
# profile (perf, cpu-clock: works without hardware counters), server pinned
# to core 0 and the load generator to core 1, as bench.py pins them.
#
#   bench/profile.sh BINARY NAME [PORT]     e.g. bench/profile.sh target/release/switchboard after
#
# Writes /tmp/prof.NAME.data and prints the top symbols; compare two
# binaries by running it for each. Needs perf (Debian: linux-perf) and the
# release loadgen (cargo build --release -p loadgen).
set -euo pipefail
BIN=$1; NAME=$2; PORT=${3:-4300}
HERE=$(cd "$(dirname "$0")/.." && pwd)
LOADGEN=$HERE/target/release/loadgen
SWITCHBOARD_MESSAGES_PER_SEC=0 SWITCHBOARD_BROADCASTS_PER_SEC=0 \
SWITCHBOARD_MAX_CONNECTIONS_PER_IP=1000000 SWITCHBOARD_MAX_HANDSHAKES_PER_IP=1000000 \
  "$BIN" --listen "127.0.0.1:$PORT" --admin-listen off > "/tmp/prof.$NAME.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "/tmp/prof.$NAME.log" && break; sleep 0.2; done
taskset -pc 0 $PID > /dev/null
taskset -c 1 "$LOADGEN" notice --addr "127.0.0.1:$PORT" --pairs 50 --warmup 1 --duration 8 --peer "$NAME" > "/tmp/prof.$NAME.load" 2>&1 &
LOAD=$!
sleep 2
perf record -e cpu-clock -F 4000 -g -p $PID -o "/tmp/prof.$NAME.data" -- sleep 5 2> /dev/null
wait $LOAD || true
grep -o 'round trips/s [0-9.]*' "/tmp/prof.$NAME.load" | head -1
perf report -i "/tmp/prof.$NAME.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40
