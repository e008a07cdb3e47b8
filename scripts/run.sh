#!/usr/bin/env bash
# `make run`: the whole stack on this machine, in the foreground, as compose.yml runs it
# in the contest: two processor simulators (unless PROCESSOR_DEFAULT_URL and
# PROCESSOR_FALLBACK_URL point at real ones), two api workers sharing one SQLite file, and
# the lb on :9999. A process that exits is started again after 1 s (compose's
# `restart: always`). Ctrl-C or SIGTERM stops everything, by PID.
#
# Variables: BIN_DIR (target/x86_64-unknown-linux-gnu/release), DATA_DIR (./data: the database and run/<name>.pid),
# LB_LISTEN (0.0.0.0:9999), API1_LISTEN (127.0.0.1:9101), API2_LISTEN (127.0.0.1:9102),
# SIM_DEFAULT_LISTEN (127.0.0.1:8001), SIM_FALLBACK_LISTEN (127.0.0.1:8002),
# PROCESSOR_DEFAULT_URL / PROCESSOR_FALLBACK_URL (use these processors, start no sim),
# CGROUP_PARENT (scripts/bench.sh: start each service inside the cgroup
# $CGROUP_PARENT/<service> when it exists; see scripts/cgroup.sh).
# Any other variable the binaries read (API_THREADS, LB_QUEUE_CAPACITY, ...) passes through.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
DATA_DIR=${DATA_DIR:-./data}
LB_LISTEN=${LB_LISTEN:-0.0.0.0:9999}
API1_LISTEN=${API1_LISTEN:-127.0.0.1:9101}
API2_LISTEN=${API2_LISTEN:-127.0.0.1:9102}
SIM_DEFAULT_LISTEN=${SIM_DEFAULT_LISTEN:-127.0.0.1:8001}
SIM_FALLBACK_LISTEN=${SIM_FALLBACK_LISTEN:-127.0.0.1:8002}
RUN_DIR=$DATA_DIR/run

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
  if [ -n "${CGROUP_PARENT:-}" ] && bash scripts/cgroup.sh exists "$CGROUP_PARENT/$name"; then
    launch=(bash scripts/cgroup.sh exec "$CGROUP_PARENT/$name" --)
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
  for f in "$RUN_DIR"/*.pid; do [ -e "$f" ] && pids+=("$(cat "$f")"); done
  ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null || true
  # Graceful first (the lb drains its queue, workers finish their calls), then by force.
  for _ in $(seq 100); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  ((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$RUN_DIR"/*.pid
  echo "run: stopped"
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

if [ -z "${PROCESSOR_DEFAULT_URL:-}" ] || [ -z "${PROCESSOR_FALLBACK_URL:-}" ]; then
  [ -x "$BIN_DIR/sim" ] || { echo "run: $BIN_DIR/sim is missing" >&2; exit 1; }
  start sim-default env SIM_LISTEN="$SIM_DEFAULT_LISTEN" SIM_FEE=0.05 "$BIN_DIR/sim"
  start sim-fallback env SIM_LISTEN="$SIM_FALLBACK_LISTEN" SIM_FEE=0.15 "$BIN_DIR/sim"
  PROCESSOR_DEFAULT_URL=http://$SIM_DEFAULT_LISTEN
  PROCESSOR_FALLBACK_URL=http://$SIM_FALLBACK_LISTEN
  wait_listening "$SIM_DEFAULT_LISTEN"
  wait_listening "$SIM_FALLBACK_LISTEN"
fi
export PROCESSOR_DEFAULT_URL PROCESSOR_FALLBACK_URL

DATABASE_PATH=$DATA_DIR/payments.db
start api1 env API_LISTEN="$API1_LISTEN" DATABASE_PATH="$DATABASE_PATH" WORKER_ID=api1 "$BIN_DIR/api"
start api2 env API_LISTEN="$API2_LISTEN" DATABASE_PATH="$DATABASE_PATH" WORKER_ID=api2 "$BIN_DIR/api"
wait_listening "$API1_LISTEN"
wait_listening "$API2_LISTEN"
start lb env LB_LISTEN="$LB_LISTEN" API_ADDRS="$API1_LISTEN,$API2_LISTEN" "$BIN_DIR/lb"
wait_listening "$LB_LISTEN"

cat <<EOF
run: ready (binaries from $BIN_DIR, database $DATABASE_PATH, pids in $RUN_DIR)
  lb        http://$LB_LISTEN   (the contest port: POST /payments, GET /payments-summary)
  api1      $API1_LISTEN
  api2      $API2_LISTEN
  default   $PROCESSOR_DEFAULT_URL
  fallback  $PROCESSOR_FALLBACK_URL
run: Ctrl-C stops everything
EOF
wait
