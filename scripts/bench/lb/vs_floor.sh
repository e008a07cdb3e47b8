#!/usr/bin/env bash
# p99 of `POST /payments` through the lb next to the bare `floor` responder, same load,
# same k6 run (scripts/bench/lb/accept.js). Starts from BIN_DIR (default target/x86_64-unknown-linux-gnu/release): two
# simulators, two api workers on one fresh SQLite file, the lb in front, and `floor`;
# all on free loopback ports. A third target, `lb-alone`, is a second lb whose workers
# never answer: its accept path without the rest of the stack working behind it, to
# tell the lb's own cost from the cost of sharing the machine with the workers. Appends
# the figures, with the machine and commit, to RESULT (default bench/results/lb-vs-floor.txt).
#
#   cargo build --release -p sim -p api -p lb --bins && bash scripts/bench/lb/vs_floor.sh
#
# Variables: RATE (500 requests/s), BENCH_SECONDS (20 per target), LB_THREADS (1), BIN_DIR, RESULT.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
RESULT=${RESULT:-bench/results/lb-vs-floor.txt}
export RATE=${RATE:-500} SECONDS_PER_TARGET=${BENCH_SECONDS:-20} LB_THREADS=${LB_THREADS:-1}

source scripts/bench/lb/lib.sh
bench_start lb-vs-floor sim floor api lb

start_backend
read -r p_lb p_floor p_alone p_nowhere p_metrics < <(free_ports 5)

start lb "$p_lb" "$BIN_DIR/lb" LB_LISTEN="127.0.0.1:$p_lb" API_ADDRS="$workers" LB_THREADS="$LB_THREADS" \
  LB_METRICS_LISTEN="127.0.0.1:$p_metrics"
start floor "$p_floor" "$BIN_DIR/floor" FLOOR_LISTEN="127.0.0.1:$p_floor"
start lb-alone "$p_alone" "$BIN_DIR/lb" LB_LISTEN="127.0.0.1:$p_alone" API_ADDRS="127.0.0.1:$p_nowhere" LB_THREADS="$LB_THREADS" LB_METRICS_LISTEN=off \
  LB_DRAIN_TIMEOUT_MS=100 RUST_LOG=error

mkdir -p "$(dirname "$RESULT")"
{
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(git rev-parse --short HEAD)  LB_THREADS=$LB_THREADS  load $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "   command: RATE=$RATE BENCH_SECONDS=$SECONDS_PER_TARGET LB_THREADS=$LB_THREADS bash scripts/bench/lb/vs_floor.sh (release build, lb with 2 api workers + 2 sims behind it)"
} >>"$RESULT"
k6 run --quiet --no-color --address 127.0.0.1:0 -e RATE="$RATE" -e SECONDS="$SECONDS_PER_TARGET" -e K6_VERSION="$(k6 version | cut -d' ' -f2)" \
  -e TARGETS="floor=http://127.0.0.1:$p_floor,lb=http://127.0.0.1:$p_lb,lb-alone=http://127.0.0.1:$p_alone" \
  -e RESULT_FILE="$work/k6.txt" scripts/bench/lb/accept.js >/dev/null
cat "$work/k6.txt" | tee -a "$RESULT"
# Every payment the lb accepted reached a worker (a benchmark that lost payments would be no figure).
sleep 2
curl -s "http://127.0.0.1:$p_metrics/metrics" | grep -E '^lb_(payments_accepted|payments_forwarded|forward_batches|queue_depth|forward_retries)' | tr '\n' ' ' | sed 's/^/   lb: /' | tee -a "$RESULT"
echo | tee -a "$RESULT"
