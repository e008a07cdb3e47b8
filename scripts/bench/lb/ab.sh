#!/usr/bin/env bash
# Two lb binaries side by side on the same stack (two simulators, two api workers on one
# fresh SQLite file), under the same k6 run of scripts/bench/lb/accept.js in alternating
# slices: p99 of `POST /payments` and the lb's CPU per request (utime + stime from
# /proc/<pid>/stat), to see what a change to the 202 path costs. Appends the figures,
# with the machine and commit, to RESULT (default bench/results/lb-ab.txt). All on free
# loopback ports; every process is stopped by PID, also on failure.
#
#   cargo build --release -p lb -p api -p sim && OLD_LB=/path/to/old/lb bash scripts/bench/lb/ab.sh
#
# Variables: OLD_LB (required: the lb to compare with), BIN_DIR (target/x86_64-unknown-linux-gnu/release: the new
# lb, api, sim), RATE (500 requests/s), BENCH_SECONDS (40 per lb), ROUNDS (8 slices per
# lb), SWAP (1: the new lb's slices first), RESULT.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
RESULT=${RESULT:-bench/results/lb-ab.txt}
RATE=${RATE:-500} SECS=${BENCH_SECONDS:-40} ROUNDS=${ROUNDS:-8}
[ -x "${OLD_LB:-}" ] || { echo "lb-ab: OLD_LB must name an lb binary" >&2; exit 1; }
source scripts/bench/lb/lib.sh
bench_start lb-ab sim api lb

start_backend
read -r p_old p_new < <(free_ports 2)

start lb-old "$p_old" "$OLD_LB" LB_LISTEN="127.0.0.1:$p_old" API_ADDRS="$workers" LB_METRICS_LISTEN=off
old_pid=${pids[-1]}
start lb-new "$p_new" "$BIN_DIR/lb" LB_LISTEN="127.0.0.1:$p_new" API_ADDRS="$workers" LB_METRICS_LISTEN=off
new_pid=${pids[-1]}

targets="old=http://127.0.0.1:$p_old,new=http://127.0.0.1:$p_new"
[ -n "${SWAP:-}" ] && targets="new=http://127.0.0.1:$p_new,old=http://127.0.0.1:$p_old"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
old0=$(ticks "$old_pid") new0=$(ticks "$new_pid")
k6 run --quiet --no-color --address 127.0.0.1:0 -e RATE="$RATE" -e SECONDS="$SECS" -e ROUNDS="$ROUNDS" \
  -e K6_VERSION="$(k6 version | cut -d' ' -f2)" -e TARGETS="$targets" -e RESULT_FILE="$work/k6.txt" \
  scripts/bench/lb/accept.js >/dev/null
old1=$(ticks "$old_pid") new1=$(ticks "$new_pid")
hz=$(getconf CLK_TCK)
per_request() { echo $(( ($2 - $1) * 1000000 / hz / (RATE * SECS) )); }

mkdir -p "$(dirname "$RESULT")"
{
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(git rev-parse --short HEAD)  load $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) cores"
  echo "   command: OLD_LB=$OLD_LB RATE=$RATE BENCH_SECONDS=$SECS ROUNDS=$ROUNDS${SWAP:+ SWAP=1} bash scripts/bench/lb/ab.sh"
  sed 's/^/   /' "$work/k6.txt"
  echo "   CPU per request (µs): old $(per_request "$old0" "$old1"), new $(per_request "$new0" "$new1")"
} | tee -a "$RESULT"
