# Shared by the lb benches (sourced): a work directory, the PIDs of what the bench starts,
# and their cleanup by PID on any exit, failure included.
#
#   bench_start NAME BIN...   checks $BIN_DIR holds each BIN, makes $work, installs the traps
#   pids+=($!)                after starting a process, so that the cleanup stops it
#   free_ports N              N free ports on 127.0.0.1 (scripts/free_ports.py)
#   start NAME PORT BINARY ENV...
#                             starts BINARY with ENV, logs in $work/NAME.log, waits for PORT
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
  python3 scripts/free_ports.py "$1"
}

wait_port() {
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "$bench_name: nothing listens on 127.0.0.1:$1" >&2; return 1
}

start() {
  local name=$1 port=$2 bin=$3; shift 3
  env "$@" "$bin" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
}
