#!/usr/bin/env bash
# `make bench`: a contest scenario (SCENARIO, scripts/lib/scenario.sh: the preview, k6/contest.js
# at 550 VUs; the final, k6/final.js at 603) against a fresh stack, then the same scenario
# against the bare `floor` responder (+ the simulators), for the ratio of our p99 to the
# floor's. Writes bench/results/runs/<date>-<contest|final|final-late>[-limits|-compose].json
# (score, p99, lag, inconsistencies, default/fallback counts, per-stage figures, ids stored
# by both processors, the per-payment check, CPU seconds and peak RSS of every process, the
# machine) and an SVG of
# latency, queues and calls in flight over the run next to it. k6 gets `-e TOKEN=<a new
# uuid>` as the contest's runner passes it.
#
# Two deployments (DEPLOY):
# - native (default): scripts/stack/run.sh from BIN_DIR, fresh database in a temp dir, free ports;
#   the floor and the simulators as processes.
# - compose: the containers the contest runs (scripts/stack/containers.sh): our simulators from
#   compose.sim.yml, the submission's docker-compose.yml (scripts/release/submission.py) on :9999,
#   each container's limits in force; then `floor` in a container under the lb's limits.
#   Adds each container's limits (from docker inspect), cgroup peak memory and throttling.
#   STORAGE=postgres: compose.postgres.yml instead (its images: scripts/setup/images.sh postgres).
#
# STORAGE=postgres natively: scripts/stack/run.sh runs the workers on a local PostgreSQL server
# (its backends' CPU counted under `postgres`); API_WORKERS=N: N workers (native only).
#
# Variables: SCENARIO (preview | final | final-late), DEPLOY (native | compose), STORAGE (sqlite | postgres),
# API_WORKERS (native), BENCH_FLOOR (1; 0: no floor run), BENCH_POINTS (1; 0: no k6 CSV, no latency
# panel), CONTEST_LIMITS=1
# (native: run lb/api1/api2 each in a cgroup with the cpu and memory limits compose.yml
# gives its service; needs writable cgroup v1/v2 cpu+memory controllers), BENCH_REQUESTS (the
# scenario's VUs), BENCH_TIME_SCALE (1: the k6 scenario's TIME_SCALE, for a quick try), BIN_DIR (target/x86_64-unknown-linux-gnu/release),
# BENCH_OUT (the result file), BENCH_KEEP=1 (keep the work dir: k6 points, samples, logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
export BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
source scripts/lib/scenario.sh
requests=${BENCH_REQUESTS:-$SCENARIO_VUS}
floor=${BENCH_FLOOR:-1}
case $floor in 0 | 1) ;; *) echo "bench: BENCH_FLOOR=$floor: expected 1 (run the floor) or 0" >&2; exit 2 ;; esac
# Every request's figures as CSV, for the plot's latency panel. Writing them costs k6 CPU and
# memory: at the final's ~600/s about +0.7 ms on the floor's p99 (bench/RESULTS.md), so
# BENCH_POINTS=0 drops them (and the panel). `@` becomes the run's path prefix.
case ${BENCH_POINTS:-1} in
  1) points=(--out "csv=@-points.csv") ;;
  0) points=() ;;
  *) echo "bench: BENCH_POINTS=$BENCH_POINTS: expected 1 (write k6's points) or 0" >&2; exit 2 ;;
esac
time_scale=${BENCH_TIME_SCALE:-1}
limits=${CONTEST_LIMITS:-}
deploy=${DEPLOY:-native}
case $deploy in
  native | compose) ;;
  *) echo "bench: DEPLOY=$deploy: expected native or compose" >&2; exit 2 ;;
esac
[ "$deploy" = compose ] && source scripts/stack/containers.sh

if [ "$deploy" = native ]; then
  for bin in sim floor api lb; do
    [ -x "$BIN_DIR/$bin" ] || { echo "bench: $BIN_DIR/$bin is missing; build it first (make bench does)" >&2; exit 1; }
  done
fi

stamp=$(date -u +%Y-%m-%d-%H%M)
base=$stamp-$SCENARIO; [ "$SCENARIO" = preview ] && base=$stamp-contest
name=$base; [ "$limits" = 1 ] && name=$base-limits; [ "$deploy" = compose ] && name=$base-compose
[ "$deploy" = compose ] && [ "$CONTAINERS_COMPOSE" != compose.yml ] && name=$name-${STORAGE}
[ "$deploy" = native ] && [ "${STORAGE:-sqlite}" = postgres ] && name=$name-postgres
[ "$deploy" = native ] && [ "${API_WORKERS:-2}" != 2 ] && name=$name-${API_WORKERS}workers
out=${BENCH_OUT:-bench/results/runs/$name.json}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "${TMPDIR:-/tmp}/rinha-bench.XXXXXX")
# Traversable by others (not listable): under STORAGE=postgres the server runs as the
# postgres user and keeps its cluster and socket below this directory.
chmod 711 "$work"
cgroup_parent=""
pids=()

cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "$deploy" = compose ] && containers_down
  if [ -n "$cgroup_parent" ]; then
    for svc in $(python3 scripts/lib/compose_limits.py compose.yml | cut -d' ' -f1); do
      bash scripts/stack/cgroup.sh remove "$cgroup_parent/$svc"
    done
    bash scripts/stack/cgroup.sh remove "$cgroup_parent"
  fi
  if [ "$rc" -eq 0 ] && [ "${BENCH_KEEP:-}" != 1 ]; then rm -rf "$work"; else echo "bench: work dir kept: $work" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() {
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: nothing listens on 127.0.0.1:$1" >&2; return 1
}

# Drops a PID from the cleanup list once it is reaped (it may then be reused by others).
forget() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# Stops one of our children and forgets its PID.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

# One contest run with the sampler around it: $1 = label, $2 = backend port, $3/$4 =
# processor ports, $5 = run dir with the pid files, $6... = NAME=URL metrics endpoints.
# With `ledger_db` set (a SQLite path, a postgres:// URL, or "-" for none), what the
# processors and our database hold is read at the end, while the stack is still up, and
# checked payment by payment (scripts/bench/ledger.py).
ledger_db=""
contest_run() {
  local label=$1 backend=$2 def=$3 fb=$4 run_dir=$5; shift 5
  # k6 is sampled too (its own pid dir, which run.sh never reads): it shares the machine.
  local k6_dir=$work/$label-k6 token
  token=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$k6_dir"
  python3 scripts/bench/sampler.py --run-dir "$run_dir" "$k6_dir" --out "$work/$label-samples.json" --metrics "$@" \
    --processors "sim-default=http://127.0.0.1:$def" "sim-fallback=http://127.0.0.1:$fb" --token "$token" &
  local sampler=$!
  pids+=("$sampler")
  echo "bench: $label: $SCENARIO_SCRIPT ($SCENARIO) MAX_REQUESTS=$requests TIME_SCALE=$time_scale (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  BACKEND_URL=http://127.0.0.1:$backend PROCESSOR_DEFAULT_URL=http://127.0.0.1:$def \
    PROCESSOR_FALLBACK_URL=http://127.0.0.1:$fb RESULT_FILE=$work/$label-result.json K6_CSV_TIME_FORMAT=unix_milli \
    k6 run --quiet "${points[@]/@/$work/$label}" -e MAX_REQUESTS="$requests" -e TIME_SCALE="$time_scale" \
    -e TOKEN="$token" "${SCENARIO_K6_ENV[@]}" "$SCENARIO_SCRIPT" 2>"$work/$label-k6.log" &
  local k6_pid=$!
  pids+=("$k6_pid")
  echo "$k6_pid" >"$k6_dir/k6.pid"
  local rc=0
  wait "$k6_pid" || rc=$?
  rm -f "$k6_dir/k6.pid"
  forget "$k6_pid"
  stop_pid "$sampler"
  [ "$rc" -eq 0 ] || { echo "bench: k6 failed ($rc):" >&2; tail -n 20 "$work/$label-k6.log" >&2; return 1; }
  if [ -n "$ledger_db" ]; then
    local db=(); [ "$ledger_db" != - ] && db=(--db "$ledger_db")
    python3 scripts/bench/ledger.py --default "http://127.0.0.1:$def" --fallback "http://127.0.0.1:$fb" \
      --lb "http://127.0.0.1:$backend" --out "$work/$label-ledger.json" "${db[@]}"
  fi
}

# ---- limits ----
limits_note="unlimited"
if [ "$deploy" = compose ]; then
  limits_note="the submission's docker-compose.yml, container limits in force"
elif [ "$limits" = 1 ]; then
  if mode=$(bash scripts/stack/cgroup.sh available 2>"$work/cgroup.err"); then
    cgroup_parent=rinha-bench-$$
    while read -r svc cpus bytes; do
      bash scripts/stack/cgroup.sh create "$cgroup_parent/$svc" "$cpus" "$bytes"
      echo "bench: $svc limited to $cpus CPU and $((bytes / 1048576)) MiB (cgroup $mode, from compose.yml)"
    done < <(python3 scripts/lib/compose_limits.py compose.yml)
    limits_note="compose.yml limits via cgroup $mode"
  else
    echo "bench: CONTEST_LIMITS=1, but this machine does not let us limit cpu and memory ($(cat "$work/cgroup.err")); running unlimited"
  fi
else
  echo "bench: running unlimited (CONTEST_LIMITS=1 runs each service under compose.yml's limits)"
fi

# ---- our stack ----
native_stack() {
  local p_lb p_lbm p_api1 p_api2 p_def p_fb stack
  read -r p_lb p_lbm p_api1 p_api2 p_def p_fb < <(python3 scripts/lib/free_ports.py 6)
  DATA_DIR=$work/stack CGROUP_PARENT=$cgroup_parent LB_LISTEN=127.0.0.1:$p_lb LB_METRICS_LISTEN=127.0.0.1:$p_lbm \
    API1_LISTEN=127.0.0.1:$p_api1 API2_LISTEN=127.0.0.1:$p_api2 \
    SIM_DEFAULT_LISTEN=127.0.0.1:$p_def SIM_FALLBACK_LISTEN=127.0.0.1:$p_fb \
    bash scripts/stack/run.sh >"$work/stack.log" 2>&1 &
  stack=$!
  pids+=("$stack")
  for _ in $(seq 600); do grep -q '^run: ready' "$work/stack.log" && break; sleep 0.1; done
  grep -q '^run: ready' "$work/stack.log" || { echo "bench: the stack did not start" >&2; cat "$work/stack.log" >&2; exit 1; }
  ledger_db=$work/stack/payments.db
  # run.sh's PostgreSQL server, on its unix socket (scripts/stack/postgres.sh's pg_database_url).
  [ "${STORAGE:-sqlite}" = postgres ] && ledger_db=postgresql://postgres@$(realpath -m "$work/stack/run/postgres" | sed 's|/|%2F|g')/payments
  contest_run stack "$p_lb" "$p_def" "$p_fb" "$work/stack/run" \
    "lb=http://127.0.0.1:$p_lbm/metrics" "api1=http://127.0.0.1:$p_api1/metrics" "api2=http://127.0.0.1:$p_api2/metrics"
  if [ -n "$cgroup_parent" ]; then
    cgroup_stats=$(for svc in $(python3 scripts/lib/compose_limits.py compose.yml | cut -d' ' -f1); do
      echo "$svc $(bash scripts/stack/cgroup.sh stats "$cgroup_parent/$svc")"
    done | python3 -c '
import json, sys
print(json.dumps({s: {"peak_memory_mb": round(int(m) / 2**20, 1), "cpu_throttled_periods": int(t)}
                  for s, m, t in (l.split() for l in sys.stdin)}))')
  fi
  stop_pid "$stack"
}

compose_stack() {
  containers_up "$work"
  containers_pids "$work/stack/run"
  local metrics
  mapfile -t metrics < <(containers_metrics)
  # Where the host reads our payments (the SQLite file in its volume, or PostgreSQL at its
  # container's address); "-" if even that fails: the per-payment check then says so.
  ledger_db=$(containers_database) || ledger_db=-
  contest_run stack 9999 8001 8002 "$work/stack/run" "${metrics[@]}"
  cgroup_stats=$(containers_limits_json)
  containers_logs "$work/stack.log"
  containers_stack_down
}

# ---- the floor ----
native_floor() {
  local f_back f_def f_fb f
  read -r f_back f_def f_fb < <(python3 scripts/lib/free_ports.py 3)
  mkdir -p "$work/floor/run"
  start_floor_part sim-default SIM_LISTEN=127.0.0.1:$f_def SIM_FEE="$SIM_DEFAULT_FEE" "$BIN_DIR/sim"
  start_floor_part sim-fallback SIM_LISTEN=127.0.0.1:$f_fb SIM_FEE="$SIM_FALLBACK_FEE" "$BIN_DIR/sim"
  start_floor_part floor FLOOR_LISTEN=127.0.0.1:$f_back "$BIN_DIR/floor"
  wait_port "$f_def"; wait_port "$f_fb"; wait_port "$f_back"
  contest_run floor "$f_back" "$f_def" "$f_fb" "$work/floor/run"
  for f in "$work"/floor/run/*.pid; do stop_pid "$(cat "$f")"; done
}

start_floor_part() {
  local name=$1; shift
  env "$@" >>"$work/floor.log" 2>&1 &
  pids+=($!)
  echo $! >"$work/floor/run/$name.pid"
}

# The floor container gets the lb's limits: it stands in for the part that answers.
compose_floor() {
  local cpus bytes
  read -r cpus bytes < <(python3 scripts/lib/compose_limits.py "$CONTAINERS_COMPOSE" | awk '$1 == "lb" { print $2, $3 }')
  floor_up "$cpus" "$bytes"
  containers_pids "$work/floor/run"
  contest_run floor 9999 8001 8002 "$work/floor/run"
}

cgroup_stats="{}"
"${deploy}_stack"
ledger_db=""
if [ "$floor" = 1 ]; then "${deploy}_floor"; else echo "bench: BENCH_FLOOR=0: no floor run"; fi

# ---- report ----
python3 scripts/bench/report.py --work "$work" --out "$out" --limits "$limits_note" --cgroups "$cgroup_stats"
python3 scripts/bench/plot.py --work "$work" --label stack --report "$out" --out "${out%.json}.svg"
echo "bench: wrote $out and ${out%.json}.svg"
