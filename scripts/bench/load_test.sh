#!/usr/bin/env bash
# `make test [SCENARIO=preview|final|final-late] [WORKERS=N]`: the contest's load test of that
# scenario (scripts/lib/scenario.sh: k6/contest.js or k6/final.js) with MAX_REQUESTS=N (the
# scenario's: 550 or 603) against whatever answers on BACKEND_URL (http://127.0.0.1:9999) and the
# processors at PROCESSOR_DEFAULT_URL / PROCESSOR_FALLBACK_URL (:8001 / :8002), e.g. the
# stack of `make run`. Prints the score table; the full result goes to RESULT_FILE
# (bench/results/latest-test.json). k6 reads those variables from the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/scenario.sh
workers=${1:-$SCENARIO_VUS}
[[ $workers =~ ^[1-9][0-9]{0,4}$ ]] || { echo "test: WORKERS=$workers: a number of VUs from 1 to 99999" >&2; exit 2; }
export BACKEND_URL=${BACKEND_URL:-http://127.0.0.1:9999}
export PROCESSOR_DEFAULT_URL=${PROCESSOR_DEFAULT_URL:-http://127.0.0.1:8001}
export PROCESSOR_FALLBACK_URL=${PROCESSOR_FALLBACK_URL:-http://127.0.0.1:8002}
export RESULT_FILE=${RESULT_FILE:-bench/results/latest-test.json}
mkdir -p "$(dirname "$RESULT_FILE")"

for url in "$BACKEND_URL" "$PROCESSOR_DEFAULT_URL" "$PROCESSOR_FALLBACK_URL"; do
  hostport=${url#http://}; hostport=${hostport%%/*}
  if ! (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null; then
    echo "test: nothing answers at $url; start the stack first (make run) or set BACKEND_URL / PROCESSOR_*_URL" >&2
    exit 1
  fi
done

quiet=(); [ -t 1 ] || quiet=(--quiet)
echo "test: $SCENARIO_SCRIPT ($SCENARIO), MAX_REQUESTS=$workers, backend $BACKEND_URL"
k6 run "${quiet[@]}" -e MAX_REQUESTS="$workers" "${SCENARIO_K6_ENV[@]}" "$SCENARIO_SCRIPT"
echo "test: result in $RESULT_FILE"
