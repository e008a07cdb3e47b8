#!/usr/bin/env bash
# `make compose-test` (part of `make check`): a contest run on the containers the contest
# gets. `make bench DEPLOY=compose` does the running: our simulators from compose.sim.yml
# (at the scenario's fees), the submission's own docker-compose.yml (written by
# scripts/release/submission.py: published image names tagged on the images `make images` built, no
# build:), the scenario's k6 script against :9999, then the floor container under the lb's
# limits; every container is removed by name at the end, also on failure. This script then
# fails the run unless: no inconsistency, lag at most VERDICT_MAX_LAG, no payment
# stored by both processors, no failed request, every payment through the default (unless
# VERDICT_ALL_DEFAULT=0), and lb, api1 and api2 ran under limits that together fit the
# contest's 1.5 CPU and 350 MB (from docker inspect). It prints both p99s.
#
# Variables: SCENARIO (preview | final | final-late: scripts/lib/scenario.sh), STORAGE (sqlite:
# compose.yml; postgres: compose.postgres.yml, whose limits include the postgres
# container's; its images: scripts/setup/images.sh postgres), COMPOSE_TEST_REQUESTS (the
# scenario's VUs: the contest's MAX_REQUESTS), VERDICT_ALL_DEFAULT (1 for the preview,
# 0 for the final, whose 60 s outage of the default no entry waits out),
# VERDICT_MAX_LAG (0), BENCH_FLOOR (1; 0: no floor run). The result file is kept in
# bench/results/compose-test[-<final|final-late>][-postgres].json.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/scenario.sh
storage=${STORAGE:-sqlite}
label=compose-test
[ "$SCENARIO" = preview ] || label=$label-$SCENARIO
case $storage in
  sqlite) ;;
  postgres) label=$label-postgres ;;
  *) echo "compose-test: STORAGE=$storage: expected sqlite or postgres" >&2; exit 2 ;;
esac
all_default=${VERDICT_ALL_DEFAULT:-1}
[ "$SCENARIO" = preview ] || all_default=${VERDICT_ALL_DEFAULT:-0}
max_lag=${VERDICT_MAX_LAG:-0}
case $all_default in 0 | 1) ;; *) echo "compose-test: VERDICT_ALL_DEFAULT=$all_default: expected 0 or 1" >&2; exit 2 ;; esac
[[ $max_lag =~ ^[0-9]+$ ]] || { echo "compose-test: VERDICT_MAX_LAG=$max_lag: a number of payments" >&2; exit 2; }
out=bench/results/$label.json
rm -f "$out"
STORAGE=$storage DEPLOY=compose BENCH_REQUESTS=${COMPOSE_TEST_REQUESTS:-$SCENARIO_VUS} BENCH_OUT=$out bash scripts/bench/bench.sh
checks=(--contest-limits --max-lag "$max_lag")
[ "$all_default" = 1 ] && checks+=(--all-default)
python3 scripts/check/verdict.py "$out" --label "$label" "${checks[@]}"
python3 - "$out" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
floor = f", floor container {r['floor']['p99_ms']:.2f} ms ({r['p99_ratio_to_floor']}x)" if r["floor"] else ""
print(f"{sys.argv[2]}: score {r['score']:.0f}, lag {r['lag']}, p99 {r['p99_ms']:.2f} ms{floor}")
PY
