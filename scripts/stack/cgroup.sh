#!/usr/bin/env bash
# Per-service cgroups, so `make bench CONTEST_LIMITS=1` runs each process under the CPU and
# memory limits compose.yml gives its service, without Docker. Works with cgroup v2 (cpu
# and memory controllers available at the v2 root) or v1 (cpu and memory hierarchies
# mounted under /sys/fs/cgroup); PATH below is relative to the hierarchy roots.
#
#   cgroup.sh available              prints v2 or v1 and exits 0 when limits can be set here
#   cgroup.sh create PATH CPUS BYTES creates PATH limited to CPUS (e.g. 0.45) and BYTES of memory
#   cgroup.sh exists PATH            exits 0 when PATH was created
#   cgroup.sh exec PATH -- CMD...    moves this process into PATH, then execs CMD (same PID)
#   cgroup.sh stats PATH             prints: peak_memory_bytes throttled_periods
#   cgroup.sh cpu PATH               prints the CPU seconds its processes used (all of them:
#                                    a container's PostgreSQL is many processes)
#   cgroup.sh of PID                 prints the PATH of the cgroup PID runs in (a container's)
#   cgroup.sh remove PATH            removes PATH (its processes must have exited)
set -euo pipefail

CG=/sys/fs/cgroup
PERIOD_US=100000

v2_root() {
  if [ -f "$CG/cgroup.controllers" ]; then echo "$CG"
  elif [ -f "$CG/unified/cgroup.controllers" ]; then echo "$CG/unified"
  fi
}

mode() {
  local root; root=$(v2_root)
  if [ -n "$root" ] && grep -qw cpu "$root/cgroup.controllers" && grep -qw memory "$root/cgroup.controllers" \
     && [ -w "$root/cgroup.subtree_control" ]; then
    echo v2; return 0
  fi
  if [ -w "$CG/cpu/cgroup.procs" ] && [ -w "$CG/memory/cgroup.procs" ] && [ -e "$CG/cpu/cpu.cfs_quota_us" ]; then
    echo v1; return 0
  fi
  return 1
}

# Probes by creating and removing a cgroup: a writable-looking tree may still refuse.
available() {
  local m probe="rinha-probe-$$"
  m=$(mode) || { echo "no writable cgroup v1/v2 cpu+memory controllers" >&2; return 1; }
  if [ "$m" = v2 ]; then
    local root; root=$(v2_root)
    # Enabling the controllers for children fails where the root holds processes (a
    # container's cgroup namespace): then nothing can be limited.
    echo "+cpu +memory" 2>/dev/null >"$root/cgroup.subtree_control" \
      || { echo "cgroup v2: cannot enable cpu and memory for child cgroups" >&2; return 1; }
    mkdir "$root/$probe" 2>/dev/null && rmdir "$root/$probe" || { echo "cgroup v2: cannot create cgroups" >&2; return 1; }
  else
    mkdir "$CG/cpu/$probe" 2>/dev/null && rmdir "$CG/cpu/$probe" || { echo "cgroup v1: cannot create cgroups" >&2; return 1; }
    mkdir "$CG/memory/$probe" 2>/dev/null && rmdir "$CG/memory/$probe" || { echo "cgroup v1: cannot create cgroups" >&2; return 1; }
  fi
  echo "$m"
}

create() {
  local path=$1 cpus=$2 bytes=$3 quota
  quota=$(awk -v c="$cpus" -v p="$PERIOD_US" 'BEGIN { printf "%d", c * p }')
  if [ "$(mode)" = v2 ]; then
    local root dir; root=$(v2_root)
    # Controllers must be enabled in every ancestor's subtree_control down to PATH's parent.
    dir=$root
    echo "+cpu +memory" >"$dir/cgroup.subtree_control"
    local part
    IFS=/ read -ra parts <<<"$path"
    for part in "${parts[@]}"; do
      dir=$dir/$part
      mkdir -p "$dir"
      [ "$dir" = "$root/$path" ] || echo "+cpu +memory" >"$dir/cgroup.subtree_control"
    done
    echo "$quota $PERIOD_US" >"$dir/cpu.max"
    echo "$bytes" >"$dir/memory.max"
  else
    mkdir -p "$CG/cpu/$path" "$CG/memory/$path"
    echo "$PERIOD_US" >"$CG/cpu/$path/cpu.cfs_period_us"
    echo "$quota" >"$CG/cpu/$path/cpu.cfs_quota_us"
    echo "$bytes" >"$CG/memory/$path/memory.limit_in_bytes"
  fi
}

exists() {
  if [ "$(mode)" = v2 ]; then [ -d "$(v2_root)/$1" ]; else [ -d "$CG/cpu/$1" ] && [ -d "$CG/memory/$1" ]; fi
}

join_and_exec() {
  local path=$1; shift
  [ "${1:-}" = -- ] && shift
  if [ "$(mode)" = v2 ]; then
    echo $$ >"$(v2_root)/$path/cgroup.procs"
  else
    echo $$ >"$CG/cpu/$path/cgroup.procs"
    echo $$ >"$CG/memory/$path/cgroup.procs"
  fi
  exec "$@"
}

stats() {
  local path=$1 peak throttled
  if [ "$(mode)" = v2 ]; then
    local dir; dir=$(v2_root)/$path
    peak=$(cat "$dir/memory.peak" 2>/dev/null || echo 0)
    throttled=$(awk '$1 == "nr_throttled" { print $2 }' "$dir/cpu.stat")
  else
    peak=$(cat "$CG/memory/$path/memory.max_usage_in_bytes")
    throttled=$(awk '$1 == "nr_throttled" { print $2 }' "$CG/cpu/$path/cpu.stat")
  fi
  echo "$peak ${throttled:-0}"
}

cpu() {
  local path=$1
  if [ "$(mode)" = v2 ]; then
    awk '$1 == "usage_usec" { printf "%.3f\n", $2 / 1e6 }' "$(v2_root)/$path/cpu.stat"
  else
    awk '{ printf "%.3f\n", $1 / 1e9 }' "$CG/cpuacct/$path/cpuacct.usage"
  fi
}

# v2: the one line `0::/PATH`; v1: the memory hierarchy's line `N:memory:/PATH` (the cpu
# hierarchy has the same PATH under Docker and under create above).
of() {
  if [ "$(mode)" = v2 ]; then
    sed -n 's#^0::/##p' "/proc/$1/cgroup"
  else
    sed -n 's#^[0-9]*:memory:/##p' "/proc/$1/cgroup"
  fi
}

remove() {
  local path=$1
  if [ "$(mode)" = v2 ]; then
    rmdir "$(v2_root)/$path" 2>/dev/null || true
  else
    rmdir "$CG/cpu/$path" "$CG/memory/$path" 2>/dev/null || true
  fi
}

cmd=${1:-}; shift || true
case $cmd in
  available) available ;;
  create) create "$@" ;;
  exists) exists "$@" ;;
  exec) join_and_exec "$@" ;;
  stats) stats "$@" ;;
  cpu) cpu "$@" ;;
  of) of "$@" ;;
  remove) remove "$@" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
