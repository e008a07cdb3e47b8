# Shared by the lb benches (sourced): a work directory, the PIDs of what the bench starts,
# and their cleanup by PID on any exit, failure included.
#
#   bench_start NAME BIN...   checks $BIN_DIR holds each BIN, makes $work, installs the traps
#   pids+=($!)                after starting a process, so that the cleanup stops it
#   free_ports N              N free ports on 127.0.0.1 (scripts/lib/free_ports.py)
#   start NAME PORT BINARY ENV...
#                             starts BINARY with ENV, logs in $work/NAME.log, waits for PORT;
#                             an lb gets the journal $work/NAME.journal unless ENV names one
#   start_backend             two simulators (5 %, 15 %) and two workers on one database in
#                             $work, on free ports; sets $workers (the lb's API_ADDRS) and
#                             $worker_pids
#
# On success the work directory is removed; on failure it is kept and named.

bench_start() {
  bench_name=$1; shift
  local bin
  for bin in "$@"; do
    [ -x "$BIN_DIR/$bin" ] || { echo "$bench_name: $BIN_DIR/$bin is missing; build it first" >&2; exit 1; }
  done
  work=$(mktemp -d "${TMPDIR:-/tmp}/$bench_name.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local rc=$? p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" -eq 0 ]; then rm -rf "$work"; else echo "$bench_name: failed; logs in $work" >&2; fi
  exit "$rc"
}

free_ports() {
  python3 scripts/lib/free_ports.py "$1"
}

wait_port() {
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "$bench_name: nothing listens on 127.0.0.1:$1" >&2; return 1
}

start() {
  local name=$1 port=$2 bin=$3; shift 3
  env LB_JOURNAL_PATH="$work/$name.journal" "$@" "$bin" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
}

start_backend() {
  local p_default p_fallback p_api1 p_api2 n
  read -r p_default p_fallback p_api1 p_api2 < <(free_ports 4)
  start sim-default "$p_default" "$BIN_DIR/sim" SIM_LISTEN="127.0.0.1:$p_default" SIM_FEE=0.05
  start sim-fallback "$p_fallback" "$BIN_DIR/sim" SIM_LISTEN="127.0.0.1:$p_fallback" SIM_FEE=0.15
  workers="127.0.0.1:$p_api1,127.0.0.1:$p_api2"
  worker_pids=()
  for n in 1 2; do
    local port_var=p_api$n
    start "api-$n" "${!port_var}" "$BIN_DIR/api" API_LISTEN="127.0.0.1:${!port_var}" DATABASE_PATH="$work/payments.db" \
      PROCESSOR_DEFAULT_URL="http://127.0.0.1:$p_default" PROCESSOR_FALLBACK_URL="http://127.0.0.1:$p_fallback"
    worker_pids+=("${pids[-1]}")
  done
}
