#!/usr/bin/env bash
# `make images`: the Docker images of compose.yml (lb, api) and compose.sim.yml (sim, which
# also carries `floor`), built from the statically linked release binaries that
# `make release` leaves in BIN_DIR. Each image is `FROM scratch`: the binaries (stripped of
# their debug info), the directories the process writes to owned by uid 10001, nothing
# else. No base image is pulled, so this works on an engine without registry access.
#
# `scripts/setup/images.sh postgres` (`make images STORAGE=postgres`) also builds
# rinha-pay-postgres for compose.postgres.yml: Debian's PostgreSQL 15 from this machine
# (make deps installs it), its libraries and a cluster made here by initdb (why:
# Dockerfile.postgres). Only when asked: it takes longer and the SQLite deployment does not
# need it.
#
# The build context of each image is prepared here, in target/images/<image>/, not the
# repository: the Dockerfiles copy `rootfs/` and the binaries from it.
#
# Usage: images.sh [postgres]. Variables: BIN_DIR (target/x86_64-unknown-linux-gnu/release).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN_DIR=${BIN_DIR:-target/x86_64-unknown-linux-gnu/release}

extra=${1:-}
case $extra in
  "" | postgres) ;;
  *) echo "images: unknown image '$extra'; usage: images.sh [postgres]" >&2; exit 2 ;;
esac
PG_VERSION=15
PG_LIB=/usr/lib/postgresql/$PG_VERSION
PG_SHARE=/usr/share/postgresql/$PG_VERSION
if [ "$extra" = postgres ] && [ ! -x "$PG_LIB/bin/postgres" ]; then
  echo "images: $PG_LIB/bin/postgres is missing; install PostgreSQL $PG_VERSION with make deps" >&2; exit 1
fi

bash scripts/setup/docker_engine.sh

# The build of one image from its prepared context; prints its size.
build() {
  local image=$1 ctx=$2 what=$3 size
  # The engine's own builder: it needs no buildx plugin (its deprecation notice is dropped).
  if ! docker build --quiet --platform linux/amd64 -f "Dockerfile.$image" -t "rinha-pay-$image:latest" "$ctx" \
      >"$ctx.log" 2>&1; then
    echo "images: docker build of rinha-pay-$image failed:" >&2; cat "$ctx.log" >&2; exit 1
  fi
  size=$(docker image inspect --format '{{.Size}}' "rinha-pay-$image:latest")
  echo "images: rinha-pay-$image:latest ($((size / 1000000)) MB: $what)"
}

# image | binaries | directories the process writes to (volume mount points, /tmp)
images=(
  "lb|lb|data run/rinha tmp"
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
  build "$image" "$ctx" "$bins"
done

[ "$extra" = postgres ] || exit 0

# ---- rinha-pay-postgres: Dockerfile.postgres says what goes in and why ----
ctx=target/images/postgres
root=$ctx/rootfs
rm -rf "$ctx"
mkdir -p "$root/etc/postgresql" "$root/var/lib/postgresql" "$root/tmp" "$root/usr/share/postgresql"
programs=("$PG_LIB/bin/postgres" "$PG_LIB/bin/pg_isready")
# The modules initdb's catalog names (plpgsql, snowball, the encoding conversions); the
# JIT (llvmjit, bitcode/) stays out: it loads LLVM, and the server runs with jit=off.
modules=()
for so in "$PG_LIB"/lib/*.so; do [ "$(basename "$so")" = llvmjit.so ] || modules+=("$so"); done
for f in "${programs[@]}" "${modules[@]}"; do install -D -m 0755 "$f" "$root$f"; done
cp -a "$PG_SHARE" "$root/usr/share/postgresql/"; rm -rf "$root$PG_SHARE/man"
cp -a /usr/share/zoneinfo "$root/usr/share/zoneinfo"
# Every shared library they load, at the path the loader resolved (ldd lists the whole
# closure, the loader itself included), followed to the file behind each symlink.
libs=$(ldd "${programs[@]}" "${modules[@]}" 2>/dev/null |
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*[^:]$/ { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "images: ldd found no library of $PG_LIB/bin/postgres" >&2; exit 1; }
for lib in $libs; do install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"; done
printf 'root:x:0:0:root:/:/nonexistent\npostgres:x:10001:10001:PostgreSQL:/var/lib/postgresql:/nonexistent\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\npostgres:x:10001:\n' >"$root/etc/group"
printf '# TYPE DATABASE USER ADDRESS METHOD (only the compose network reaches the server)\nhost all all all scram-sha-256\n' \
  >"$root/etc/postgresql/pg_hba.conf"

# The cluster: initdb refuses root, so it runs as this machine's postgres user in a
# directory of its own; the image's COPY --chown gives the files to uid 10001.
cluster=$(mktemp -d "${TMPDIR:-/tmp}/rinha-pg.XXXXXX")
trap 'rm -rf "$cluster"' EXIT
echo rinha >"$cluster/password"
chown -R postgres: "$cluster"
as_postgres() { runuser -u postgres -- env -i TZ=UTC PATH=/usr/bin:/bin "$@"; }
if ! as_postgres "$PG_LIB/bin/initdb" -D "$cluster/data" -U rinha --pwfile="$cluster/password" \
    --auth=scram-sha-256 --locale=C --encoding=UTF8 --no-instructions >"$ctx.initdb.log" 2>&1 ||
  ! echo "CREATE DATABASE rinha OWNER rinha" |
    as_postgres "$PG_LIB/bin/postgres" --single -D "$cluster/data" -j postgres >>"$ctx.initdb.log" 2>&1; then
  echo "images: initdb of the rinha-pay-postgres cluster failed:" >&2; cat "$ctx.initdb.log" >&2; exit 1
fi
cp -a "$cluster/data" "$root/var/lib/postgresql/data"
build postgres "$ctx" "PostgreSQL $PG_VERSION, $(wc -w <<<"$libs") libraries, an empty cluster"
