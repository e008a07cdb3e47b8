#!/usr/bin/env bash
# Measures sim's POST /payments throughput on ONE core with delay 0: sim pinned to CPU 0
# with a current-thread runtime, the load generator (sim/examples/load.rs) pinned to CPU 1.
# Writes bench/results/sim-throughput.txt. Usage: scripts/bench/sim/throughput.sh [connections] [payments]
set -euo pipefail
cd "$(dirname "$0")/../../.."
CONNECTIONS=${1:-64}
PAYMENTS=${2:-200000}
cargo build --release -p sim --bins --examples
ADDR=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SIM_LISTEN=$ADDR SIM_THREADS=1 taskset -c 0 target/release/sim &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/${ADDR%:*}/${ADDR#*:}) 2>/dev/null && break; sleep 0.1; done
mkdir -p bench/results
OUT=bench/results/sim-throughput.txt
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
taskset -c 1 target/release/examples/load --addr "$ADDR" --connections "$CONNECTIONS" --payments "$PAYMENTS" --out "$OUT"
{
  echo "sim command: SIM_LISTEN=$ADDR SIM_THREADS=1 taskset -c 0 target/release/sim"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), load average before: $LOAD_BEFORE (other builds share the machine)"
  echo "measured: $(date -u +%FT%TZ) by scripts/bench/sim/throughput.sh $CONNECTIONS $PAYMENTS"
} >> "$OUT"
