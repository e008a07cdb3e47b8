#!/usr/bin/env bash
# `make run`: starts the stack on this machine in the foreground; Ctrl-C stops it all.
# For now: the two processor simulators (default on :8001, fallback on :8002).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

SIM_LISTEN=127.0.0.1:8001 SIM_FEE=0.05 "$BIN/sim" & pids+=($!)
SIM_LISTEN=127.0.0.1:8002 SIM_FEE=0.15 "$BIN/sim" & pids+=($!)
echo "run: processor simulators on 127.0.0.1:8001 (default) and 127.0.0.1:8002 (fallback); Ctrl-C stops"
wait -n "${pids[@]}"
