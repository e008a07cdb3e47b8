#!/usr/bin/env bash
# How the lb is scheduled under a fixed open load, for each LB_SLICE_US in SLICES: ROUNDS
# rounds, one fresh lb per slice in each, in front of the same two workers and simulators,
# taking RATE payments/s for BENCH_SECONDS (open-load, 50 connections). Per run, over the
# load alone: the lb's and the workers' CPU and run-queue wait (the sum over their threads
# of /proc/<pid>/task/*/schedstat) and context switches (voluntary / involuntary, from each
# thread's status). Counts that hardly depend on the host's speed, to see what the slice
# changes (docs/architecture.md, "The lb's slice"). Appends to RESULT
# (bench/results/lb-sched.txt). All on free loopback ports; stopped by PID, also on failure.
#
#   make release && bash scripts/bench/lb/sched.sh
#
# Variables: BIN_DIR (target/x86_64-unknown-linux-gnu/release), SLICES ("0 100"), RATE (600
# payments/s), BENCH_SECONDS (20 per run), ROUNDS (3), RESULT.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
RESULT=${RESULT:-bench/results/lb-sched.txt}
SLICES=${SLICES:-0 100} RATE=${RATE:-600} SECS=${BENCH_SECONDS:-20} ROUNDS=${ROUNDS:-3}
source scripts/bench/lb/lib.sh
bench_start lb-sched sim api lb open-load
start_backend

# "cpu_ns wait_ns voluntary involuntary" summed over the threads of the PIDs given.
counts() {
  local pid task cpu=0 wait=0 vol=0 invol=0 a b
  for pid in "$@"; do
    for task in /proc/"$pid"/task/*; do
      read -r a b _ <"$task/schedstat"
      cpu=$((cpu + a)) wait=$((wait + b))
      vol=$((vol + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$task/status")))
      invol=$((invol + $(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$task/status")))
    done
  done
  echo "$cpu $wait $vol $invol"
}

# Run $2: a fresh lb (its own journal) asking for slice $1 µs, the load, the counts; one line to $work/runs.txt.
run() {
  local slice=$1 round=$2 port lb_pid lb0 lb1 api0 api1
  port=$(free_ports 1)
  start "lb-$slice-$round" "$port" "$BIN_DIR/lb" LB_LISTEN="127.0.0.1:$port" API_ADDRS="$workers" \
    LB_METRICS_LISTEN=off LB_SLICE_US="$slice"
  lb_pid=${pids[-1]}
  read -ra lb0 < <(counts "$lb_pid")
  read -ra api0 < <(counts "${worker_pids[@]}")
  "$BIN_DIR/open-load" --target "http://127.0.0.1:$port" --rate "$RATE" --secs "$SECS" \
    --connections 50 >"$work/load.txt"
  read -ra lb1 < <(counts "$lb_pid")
  read -ra api1 < <(counts "${worker_pids[@]}")
  kill -TERM "$lb_pid" && wait "$lb_pid" || true
  unset 'pids[-1]'
  echo "   slice $slice µs: lb cpu $(( (lb1[0] - lb0[0]) / 1000000 )) ms, wait $(( (lb1[1] - lb0[1]) / 1000000 )) ms," \
    "switches $((lb1[2] - lb0[2])) voluntary, $((lb1[3] - lb0[3])) involuntary;" \
    "workers cpu $(( (api1[0] - api0[0]) / 1000000 )) ms, wait $(( (api1[1] - api0[1]) / 1000000 )) ms," \
    "$((api1[3] - api0[3])) involuntary | $(tail -n 1 "$work/load.txt")" >>"$work/runs.txt"
}

for round in $(seq "$ROUNDS"); do
  for slice in $SLICES; do run "$slice" "$round"; done
done
mkdir -p "$(dirname "$RESULT")"
{
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(git rev-parse --short HEAD)  load $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) cores"
  echo "   command: SLICES=\"$SLICES\" RATE=$RATE BENCH_SECONDS=$SECS ROUNDS=$ROUNDS bash scripts/bench/lb/sched.sh"
  cat "$work/runs.txt"
} | tee -a "$RESULT"
