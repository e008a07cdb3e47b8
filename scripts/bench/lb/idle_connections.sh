#!/usr/bin/env bash
# The lb's peak memory (VmHWM) with many client connections held open: two
# simulators and two api workers on one fresh SQLite file, then for each mode a fresh lb
# in front and scripts/bench/lb/idle_connections.py holding COUNT connections to it (fresh:
# connected only; used: one keep-alive request answered, then idle; head: a request head
# without its end; body: a whole head and the first byte of its body, the most a
# connection costs). Each line says how many connections the lb kept and refused,
# its VmHWM and VmRSS, and what a new `POST /payments` got while they were held and
# after they closed. Appends the figures, with the machine and commit, to RESULT
# (default bench/results/lb-idle-connections.txt). All on free loopback ports; every
# process is stopped by PID, also on failure.
#
#   cargo build --release -p lb -p api -p sim && bash scripts/bench/lb/idle_connections.sh
#
# Variables: COUNT (4000), MODES ("fresh used head body"), BIN_DIR (target/x86_64-unknown-linux-gnu/release), RESULT,
# NOTE (a remark for the result file's header, e.g. which lb BIN_DIR holds), and any LB_*
# variable (e.g. LB_MAX_CONNECTIONS), which is passed to the lb.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}
RESULT=${RESULT:-bench/results/lb-idle-connections.txt}
COUNT=${COUNT:-4000}
MODES=${MODES:-fresh used head body}

source scripts/bench/lb/lib.sh
bench_start lb-idle-connections sim api lb
# One descriptor per held connection in this shell's children (the client and the lb).
want=$((COUNT + 1024))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want" ]; then
  echo "lb-idle-connections: the hard limit of open files ($(ulimit -Hn)) is below $want" >&2; exit 1
fi
ulimit -n "$want"

start_backend

lb_settings=$(env | grep -E '^LB_' | grep -v '^LB_LISTEN=' | sort | tr '\n' ' ' || true)
mkdir -p "$(dirname "$RESULT")"
{
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- lb || echo '+changes')  $(nproc) cores, glibc malloc, $BIN_DIR"
  echo "   command: ${lb_settings}COUNT=$COUNT MODES=\"$MODES\" BIN_DIR=$BIN_DIR bash scripts/bench/lb/idle_connections.sh${NOTE:+  ($NOTE)}"
} >>"$RESULT"
status=0
for mode in $MODES; do
  read -r p_lb < <(free_ports 1)
  start "lb-$mode" "$p_lb" "$BIN_DIR/lb" LB_LISTEN="127.0.0.1:$p_lb" API_ADDRS="$workers" LB_METRICS_LISTEN=off
  lb_pid=${pids[-1]}
  line=$(python3 scripts/bench/lb/idle_connections.py "$p_lb" "$lb_pid" "$mode" "$COUNT") || status=1
  echo "   $line" | tee -a "$RESULT"
  kill -TERM "$lb_pid"
  wait "$lb_pid" || { echo "lb-idle-connections: the lb ($mode) exited with $?" >&2; status=1; }
  unset 'pids[-1]'
done
exit "$status"
