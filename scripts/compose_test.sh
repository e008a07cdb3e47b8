#!/usr/bin/env bash
# `make compose-test` (part of `make check`): the contest run on the containers the contest
# gets. `make bench DEPLOY=compose` does the running: our simulators from compose.sim.yml,
# the submission's own docker-compose.yml (written by scripts/submission.py: published
# image names tagged on the images `make images` built, no build:), k6/contest.js against
# :9999, then the floor container under the lb's limits; every container is removed by name
# at the end, also on failure. This script then fails the run unless: no inconsistency, no
# lag, no failed request, every payment through the default, and lb, api1 and api2 ran
# under limits that together fit the contest's 1.5 CPU and 350 MB (from docker inspect).
# It prints both p99s.
#
# Variables: STORAGE (sqlite: compose.yml; postgres: compose.postgres.yml, whose limits
# include the postgres container's; its images: scripts/images.sh postgres),
# COMPOSE_TEST_REQUESTS (550: the contest's MAX_REQUESTS); the result file is kept in
# bench/results/compose-test.json (compose-test-postgres.json).
set -euo pipefail
cd "$(dirname "$0")/.."
storage=${STORAGE:-sqlite}
case $storage in
  sqlite) out=bench/results/compose-test.json label=compose-test ;;
  postgres) out=bench/results/compose-test-postgres.json label=compose-test-postgres ;;
  *) echo "compose-test: STORAGE=$storage: expected sqlite or postgres" >&2; exit 2 ;;
esac
rm -f "$out"
STORAGE=$storage DEPLOY=compose BENCH_REQUESTS=${COMPOSE_TEST_REQUESTS:-550} BENCH_OUT=$out bash scripts/bench.sh
python3 scripts/verdict.py "$out" --label "$label" --all-default --contest-limits
python3 - "$out" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}: score {r['score']:.0f}, p99 {r['p99_ms']:.2f} ms, floor container {r['floor']['p99_ms']:.2f} ms "
      f"({r['p99_ratio_to_floor']}x)")
PY
