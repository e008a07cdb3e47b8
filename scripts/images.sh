#!/usr/bin/env bash
# `make images`: the Docker images of compose.yml (lb, api) and compose.sim.yml (sim, which
# also carries `floor`), built from the statically linked release binaries that
# `make release` leaves in BIN_DIR. Each image is `FROM scratch`: the binaries (stripped of
# their debug info), the directories the process writes to owned by uid 10001, nothing
# else. No base image is pulled, so this works on an engine without registry access.
#
# The build context of each image is prepared here, in target/images/<image>/, not the
# repository: the Dockerfiles copy `rootfs/` and the binaries from it.
#
# Variables: BIN_DIR (target/x86_64-unknown-linux-gnu/release).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}

bash scripts/docker_engine.sh

# image | binaries | directories the process writes to (volume mount points, /tmp)
images=(
  "lb|lb|run/rinha tmp"
  "api|api|data run/rinha tmp"
  "sim|sim floor|tmp"
)

for row in "${images[@]}"; do
  IFS='|' read -r image bins dirs <<<"$row"
  ctx=target/images/$image
  rm -rf "$ctx"
  mkdir -p "$ctx/rootfs"
  for d in $dirs; do mkdir -p "$ctx/rootfs/$d"; done
  for bin in $bins; do
    [ -x "$BIN_DIR/$bin" ] || { echo "images: $BIN_DIR/$bin is missing; run make release first (make images does)" >&2; exit 1; }
    # A dynamic binary (one that names an ELF interpreter) would start nowhere in an empty
    # image: refuse it here, not at run time.
    if readelf -l "$BIN_DIR/$bin" | grep -q 'program interpreter'; then
      echo "images: $BIN_DIR/$bin is linked dynamically; build it with make release (static)" >&2; exit 1
    fi
    strip --strip-debug -o "$ctx/$bin" "$BIN_DIR/$bin"
  done
  # The engine's own builder: it needs no buildx plugin (its deprecation notice is dropped).
  if ! docker build --quiet --platform linux/amd64 -f "Dockerfile.$image" -t "rinha-pay-$image:latest" "$ctx" \
      >"$ctx.log" 2>&1; then
    echo "images: docker build of rinha-pay-$image failed:" >&2; cat "$ctx.log" >&2; exit 1
  fi
  size=$(docker image inspect --format '{{.Size}}' "rinha-pay-$image:latest")
  echo "images: rinha-pay-$image:latest ($((size / 1000000)) MB: $bins)"
done
