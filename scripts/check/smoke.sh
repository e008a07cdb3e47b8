#!/usr/bin/env bash
# Part of `make check`: a short run of the contest scenario (k6/contest.js with a small
# MAX_REQUESTS and the timeline squeezed by TIME_SCALE) against the real stack, started by
# scripts/stack/run.sh from BIN_DIR (target/debug) on free ports with a fresh database, and
# stopped by PID at the end, also on failure. Asserts what the contest punishes: no
# inconsistency in any audit, no lag (every accepted payment recorded), no over-recording.
#
# Variables: BIN_DIR (target/debug), SMOKE_REQUESTS (40), SMOKE_TIME_SCALE (0.25).
set -euo pipefail
cd "$(dirname "$0")/../.."
export BIN_DIR=${BIN_DIR:-target/debug}
requests=${SMOKE_REQUESTS:-40}
scale=${SMOKE_TIME_SCALE:-0.25}

work=$(mktemp -d "${TMPDIR:-/tmp}/rinha-smoke.XXXXXX")
read -r p_lb p_api1 p_api2 p_def p_fb < <(python3 scripts/lib/free_ports.py 5)

run_pid=""
finish() {
  local rc=$?
  if [ -n "$run_pid" ]; then
    kill -TERM "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ]; then
    echo "smoke: the stack's output (last 40 lines of $work/stack.log):" >&2
    tail -n 40 "$work/stack.log" >&2 || true
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap finish EXIT

DATA_DIR=$work/data LB_LISTEN=127.0.0.1:$p_lb API1_LISTEN=127.0.0.1:$p_api1 API2_LISTEN=127.0.0.1:$p_api2 \
  SIM_DEFAULT_LISTEN=127.0.0.1:$p_def SIM_FALLBACK_LISTEN=127.0.0.1:$p_fb LB_METRICS_LISTEN=off \
  bash scripts/stack/run.sh >"$work/stack.log" 2>&1 &
run_pid=$!
for _ in $(seq 300); do
  grep -q '^run: ready' "$work/stack.log" && break
  kill -0 "$run_pid" 2>/dev/null || { echo "smoke: the stack did not start" >&2; exit 1; }
  sleep 0.1
done
grep -q '^run: ready' "$work/stack.log" || { echo "smoke: the stack was not ready after 30 s" >&2; exit 1; }

echo "smoke: k6/contest.js MAX_REQUESTS=$requests TIME_SCALE=$scale against the stack from $BIN_DIR"
BACKEND_URL=http://127.0.0.1:$p_lb PROCESSOR_DEFAULT_URL=http://127.0.0.1:$p_def \
  PROCESSOR_FALLBACK_URL=http://127.0.0.1:$p_fb RESULT_FILE=$work/result.json \
  k6 run --quiet -e MAX_REQUESTS="$requests" -e TIME_SCALE="$scale" -e DRAIN_MS=2000 \
  k6/contest.js 2>"$work/k6.log" || { tail -n 20 "$work/k6.log" >&2; exit 1; }

python3 scripts/check/verdict.py "$work/result.json" --label smoke
