#!/usr/bin/env bash
# `make run`: the whole stack on this machine, in the foreground, as compose.yml runs it
# in the contest: two processor simulators at the fees of SCENARIO (scripts/lib/scenario.sh;
# unless PROCESSOR_DEFAULT_URL and PROCESSOR_FALLBACK_URL point at real ones), API_WORKERS api workers (2) sharing one
# database, and the lb on :9999. The database is a SQLite file (STORAGE=sqlite, the
# default) or a PostgreSQL server of its own (STORAGE=postgres: Debian's binaries, the
# cluster in $DATA_DIR/postgres, created once and reused, listening only on a unix socket
# in $DATA_DIR/run/postgres, run as the `postgres` user when we are root). A process that
# exits is started again after 1 s (compose's `restart: always`). Ctrl-C or SIGTERM stops
# everything, by PID; PostgreSQL last, once no worker uses it.
#
# Variables: BIN_DIR (target/x86_64-unknown-linux-gnu/release), DATA_DIR (./data: the database, the lb's
# journal lb.journal, and run/<name>.pid),
# STORAGE (sqlite | postgres), API_WORKERS (2), SCENARIO (preview | final | final-late: the
# simulators' fees; SIM_DEFAULT_FEE / SIM_FALLBACK_FEE override them),
# LB_LISTEN (0.0.0.0:9999), API1_LISTEN (127.0.0.1:9101), API2_LISTEN (127.0.0.1:9102), ... APIn_LISTEN (127.0.0.1:910n),
# SIM_DEFAULT_LISTEN (127.0.0.1:8001), SIM_FALLBACK_LISTEN (127.0.0.1:8002),
# PROCESSOR_DEFAULT_URL / PROCESSOR_FALLBACK_URL (use these processors, start no sim),
# CGROUP_PARENT (scripts/bench/bench.sh: start each service inside the cgroup
# $CGROUP_PARENT/<service> when it exists; see scripts/stack/cgroup.sh).
# Any other variable the binaries read (API_THREADS, LB_QUEUE_CAPACITY, ...) passes through.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
DATA_DIR=${DATA_DIR:-./data}
LB_LISTEN=${LB_LISTEN:-0.0.0.0:9999}
STORAGE=${STORAGE:-sqlite}
API_WORKERS=${API_WORKERS:-2}
SIM_DEFAULT_LISTEN=${SIM_DEFAULT_LISTEN:-127.0.0.1:8001}
SIM_FALLBACK_LISTEN=${SIM_FALLBACK_LISTEN:-127.0.0.1:8002}
RUN_DIR=$DATA_DIR/run

case $STORAGE in sqlite | postgres) ;; *) echo "run: STORAGE=$STORAGE: use sqlite or postgres" >&2; exit 2 ;; esac
source scripts/lib/scenario.sh
[[ $API_WORKERS =~ ^[1-9][0-9]?$ ]] || { echo "run: API_WORKERS=$API_WORKERS: a number of workers from 1 to 99" >&2; exit 2; }
for bin in api lb; do
  [ -x "$BIN_DIR/$bin" ] || { echo "run: $BIN_DIR/$bin is missing; build it first (make run does)" >&2; exit 1; }
done
mkdir -p "$DATA_DIR" "$RUN_DIR"
rm -f "$RUN_DIR"/*.pid "$RUN_DIR/stopping"

supervisors=()

# Runs `$@` as service $1 until the stack stops, restarting it when it exits.
supervise() {
  local name=$1; shift
  local launch=()
  if [ -n "${CGROUP_PARENT:-}" ] && bash scripts/stack/cgroup.sh exists "$CGROUP_PARENT/$name"; then
    launch=(bash scripts/stack/cgroup.sh exec "$CGROUP_PARENT/$name" --)
  fi
  while :; do
    "${launch[@]}" "$@" &
    local pid=$!
    echo "$pid" >"$RUN_DIR/$name.pid"
    local rc=0
    wait "$pid" || rc=$?
    [ -e "$RUN_DIR/stopping" ] && return 0
    echo "run: $name (pid $pid) exited with status $rc; starting it again in 1 s" >&2
    sleep 1
    [ -e "$RUN_DIR/stopping" ] && return 0
  done
}

start() { supervise "$@" & supervisors+=($!); }

stop() {
  trap - EXIT INT TERM
  touch "$RUN_DIR/stopping"
  kill "${supervisors[@]}" 2>/dev/null || true
  local pids=()
  for f in "$RUN_DIR"/*.pid; do [ -e "$f" ] && [ "$f" != "$RUN_DIR/postgres.pid" ] && pids+=("$(cat "$f")"); done
  # Graceful first (the lb drains its queue, workers finish their calls), then by force.
  stop_pids TERM "${pids[@]}"
  # The database last, once nothing uses it: SIGINT is PostgreSQL's fast shutdown.
  [ -e "$RUN_DIR/postgres.pid" ] && stop_pids INT "$(cat "$RUN_DIR/postgres.pid")"
  wait 2>/dev/null || true
  rm -f "$RUN_DIR"/*.pid
  echo "run: stopped"
}

# Sends signal $1 to the PIDs that follow, waits 10 s at most for them to exit, then SIGKILL.
stop_pids() {
  local sig=$1; shift
  (($#)) || return 0
  kill "-$sig" "$@" 2>/dev/null || true
  for _ in $(seq 100); do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until `addr` (host:port or unix:/path) accepts connections; 30 s at most.
wait_listening() {
  local addr=$1 host port
  for _ in $(seq 300); do
    if [[ $addr == unix:* ]]; then
      [ -S "${addr#unix:}" ] && return 0
    else
      host=${addr%:*}; port=${addr##*:}
      [ "$host" = 0.0.0.0 ] && host=127.0.0.1
      (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  echo "run: nothing listens on $addr after 30 s" >&2
  return 1
}

sims=""
if [ -z "${PROCESSOR_DEFAULT_URL:-}" ] || [ -z "${PROCESSOR_FALLBACK_URL:-}" ]; then
  sims=1
  [ -x "$BIN_DIR/sim" ] || { echo "run: $BIN_DIR/sim is missing" >&2; exit 1; }
  start sim-default env SIM_LISTEN="$SIM_DEFAULT_LISTEN" SIM_FEE="$SIM_DEFAULT_FEE" "$BIN_DIR/sim"
  start sim-fallback env SIM_LISTEN="$SIM_FALLBACK_LISTEN" SIM_FEE="$SIM_FALLBACK_FEE" "$BIN_DIR/sim"
  PROCESSOR_DEFAULT_URL=http://$SIM_DEFAULT_LISTEN
  PROCESSOR_FALLBACK_URL=http://$SIM_FALLBACK_LISTEN
  wait_listening "$SIM_DEFAULT_LISTEN"
  wait_listening "$SIM_FALLBACK_LISTEN"
fi
export PROCESSOR_DEFAULT_URL PROCESSOR_FALLBACK_URL

DATABASE_PATH=$DATA_DIR/payments.db
DATABASE_URL=
database=$DATABASE_PATH
if [ "$STORAGE" = postgres ]; then
  source scripts/stack/postgres.sh
  pg_prepare "$DATA_DIR/postgres" "$RUN_DIR/postgres"
  start postgres "${PG_EXEC[@]}"
  pg_wait_ready
  DATABASE_URL=$(pg_database_url payments)
  database="PostgreSQL $DATABASE_URL (cluster in $DATA_DIR/postgres)"
fi

api_addrs=()
for i in $(seq "$API_WORKERS"); do
  listen_var=API${i}_LISTEN
  listen=${!listen_var:-127.0.0.1:$((9100 + i))}
  api_addrs+=("$listen")
  start "api$i" env API_LISTEN="$listen" DATABASE_PATH="$DATABASE_PATH" DATABASE_URL="$DATABASE_URL" WORKER_ID="api$i" "$BIN_DIR/api"
done
for addr in "${api_addrs[@]}"; do wait_listening "$addr"; done
start lb env LB_LISTEN="$LB_LISTEN" LB_JOURNAL_PATH="${LB_JOURNAL_PATH:-$DATA_DIR/lb.journal}" API_ADDRS="$(IFS=,; echo "${api_addrs[*]}")" "$BIN_DIR/lb"
wait_listening "$LB_LISTEN"

cat <<EOF
run: ready (binaries from $BIN_DIR, database $database, pids in $RUN_DIR)
  lb        http://$LB_LISTEN   (the contest port: POST /payments, GET /payments-summary)
  lb        ${LB_METRICS_LISTEN:-127.0.0.1:9990}   (GET /metrics, off the contest port; LB_METRICS_LISTEN)
$(for i in "${!api_addrs[@]}"; do printf '  api%-6s %s\n' "$((i + 1))" "${api_addrs[$i]}"; done)
  default   $PROCESSOR_DEFAULT_URL$([ -n "$sims" ] && echo "  (simulator, fee $SIM_DEFAULT_FEE: SCENARIO=$SCENARIO)")
  fallback  $PROCESSOR_FALLBACK_URL$([ -n "$sims" ] && echo "  (simulator, fee $SIM_FALLBACK_FEE)")
run: Ctrl-C stops everything
EOF
wait
