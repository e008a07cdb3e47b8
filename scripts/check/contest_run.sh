#!/usr/bin/env bash
# `make contest-run` (part of `make check`): the contest's own runner sequence, step by step,
# on the submission folder as the organizers get it (no source in it):
#   1. both compose projects taken down first, as the runner does before each entry;
#   2. the processors' compose up (ours: compose.sim.yml copied to payment-processor/, at
#      the scenario's fees), `docker compose up --build -d`;
#   3. `docker compose up --build` in the background inside participantes/rinha-pay/
#      (written by scripts/release/submission.py, its images tagged on the ones `make images`
#      built: compose pulls nothing), its output in docker-compose.logs there;
#   4. readiness: up to 15 tries of `curl -f -s --max-time 3 localhost:9999/payments-summary`,
#      5 s apart (the runner sleeps after every try); none answering fails the entry;
#   5. `k6 run -e MAX_REQUESTS=<the scenario's> -e PARTICIPANT=rinha-pay -e TOKEN=<a new uuid>`
#      of the scenario's script, its log in k6.logs;
#   6. `docker compose down -v --remove-orphans` and `docker compose rm -s -v -f` in the
#      participant's folder, `docker compose down --volumes` in the processors'.
# Before step 6 it also reads which ids both processors stored (scripts/bench/ledger.py).
# Then scripts/check/verdict.py passes or fails the result: no inconsistency, lag at most
# VERDICT_MAX_LAG, no double charge, no failed request, every payment through the default
# unless VERDICT_ALL_DEFAULT=0. Everything it started is taken down by name (the compose
# projects) and by PID (the background `docker compose up`), also on failure.
#
# Variables: SCENARIO (preview | final | final-late: scripts/lib/scenario.sh), VERDICT_MAX_LAG,
# VERDICT_ALL_DEFAULT (as in scripts/check/compose_test.sh). Result:
# bench/results/contest-run[-<final|final-late>].json; the folder and logs are kept in a temp
# dir when the run fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/scenario.sh
source scripts/stack/containers.sh
participant=rinha-pay
label=contest-run; [ "$SCENARIO" = preview ] || label=$label-$SCENARIO
out=bench/results/$label.json
all_default=${VERDICT_ALL_DEFAULT:-1}; [ "$SCENARIO" = preview ] || all_default=${VERDICT_ALL_DEFAULT:-0}
max_lag=${VERDICT_MAX_LAG:-0}
case $all_default in 0 | 1) ;; *) echo "contest-run: VERDICT_ALL_DEFAULT=$all_default: expected 0 or 1" >&2; exit 2 ;; esac
[[ $max_lag =~ ^[0-9]+$ ]] || { echo "contest-run: VERDICT_MAX_LAG=$max_lag: a number of payments" >&2; exit 2; }
for tool in curl k6 docker; do
  command -v "$tool" >/dev/null || { echo "contest-run: $tool is missing (make deps, make images)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/rinha-contest-run.XXXXXX")
entry=$work/participantes/$participant
processors=$work/payment-processor
up_pid=""

stop_containers() {
  if [ -d "$entry" ]; then
    (cd "$entry" && docker compose down -v --remove-orphans && docker compose rm -s -v -f) >>"$work/stop.log" 2>&1 || true
  fi
  if [ -d "$processors" ]; then
    (cd "$processors" && docker compose down --volumes) >>"$work/stop.log" 2>&1 || true
  fi
}

finish() {
  local rc=$?
  stop_containers
  if [ -n "$up_pid" ]; then
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  if [ "$rc" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "contest-run: failed; the folder and logs are in $work (docker-compose.logs, k6.logs):" >&2
    tail -n 20 "$entry/docker-compose.logs" >&2 2>/dev/null || true
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash scripts/setup/docker_engine.sh
python3 scripts/release/submission.py --out "$entry" --name "$participant" >"$work/submission.log"
mkdir -p "$processors"
cp compose.sim.yml "$processors/docker-compose.yml"

# 1. Leftovers of an earlier run (ours under the same project names, or a broken one).
containers_down
ports_free 9999 8001 8002

# 2.-3.
echo "contest-run: processors up (fees $SIM_DEFAULT_FEE / $SIM_FALLBACK_FEE), then $participant's compose in $entry"
(cd "$processors" && docker compose up --build -d) >"$work/processors.log" 2>&1 \
  || { cat "$work/processors.log" >&2; exit 1; }
(cd "$entry" && : >docker-compose.logs && exec nohup docker compose up --build >>docker-compose.logs 2>&1) &
up_pid=$!

# 4.
ready=""
for attempt in $(seq 15); do
  if curl -f -s --max-time 3 localhost:9999/payments-summary >/dev/null; then ready=1; fi
  echo "contest-run: tried $attempt out of 15..."
  sleep 5
  [ -n "$ready" ] && break
done
[ -n "$ready" ] || { echo "contest-run: the backend did not answer GET localhost:9999/payments-summary in 15 tries: the entry fails" >&2; exit 1; }

# 5.
token=$(cat /proc/sys/kernel/random/uuid)
echo "contest-run: k6 run $SCENARIO_SCRIPT -e MAX_REQUESTS=$SCENARIO_VUS -e PARTICIPANT=$participant -e TOKEN=$token"
RESULT_FILE=$work/result.json k6 run -e MAX_REQUESTS="$SCENARIO_VUS" -e PARTICIPANT="$participant" -e TOKEN="$token" \
  "${SCENARIO_K6_ENV[@]}" --log-output="file=$entry/k6.logs" --quiet "$SCENARIO_SCRIPT"
python3 scripts/bench/ledger.py --default http://127.0.0.1:8001 --fallback http://127.0.0.1:8002 --out "$work/ledger.json"

# 6.
stop_containers
wait "$up_pid" 2>/dev/null || true
up_pid=""

mkdir -p "$(dirname "$out")"
python3 - "$work/result.json" "$work/ledger.json" "$out" <<'PY'
import json, sys
result, ledger = (json.load(open(p)) for p in sys.argv[1:3])
result.update(double_charged=ledger["double_charged"], double_charged_ids=ledger["double_charged_ids"])
open(sys.argv[3], "w").write(json.dumps(result, indent=2) + "\n")
PY
checks=(--max-lag "$max_lag")
[ "$all_default" = 1 ] && checks+=(--all-default)
python3 scripts/check/verdict.py "$out" --label "$label" "${checks[@]}"
