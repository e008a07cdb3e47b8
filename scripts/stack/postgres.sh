# Sourced by scripts/stack/run.sh under STORAGE=postgres: a local PostgreSQL server for the
# workers, from Debian's binaries (`make deps` installs them). The cluster lives in one
# directory, created by initdb the first time and reused after, so payments survive a
# restart of `make run` as the SQLite file does. The server listens only on a unix socket
# (no port to collide with, nothing reachable from outside), with trust authentication for
# the `postgres` role: the socket directory is the access control. PostgreSQL refuses to
# run as root, so when we are root it runs as the `postgres` user (created by Debian's
# package) through setpriv, which execs: the PID run.sh records is the server's own, and
# run.sh stops it by that PID (SIGINT, PostgreSQL's fast shutdown), after the workers.

PG_ADVICE="run \`make deps\` (it installs Debian's postgresql package)"

# The directory of initdb and postgres: on PATH, else the newest /usr/lib/postgresql/<n>/bin.
pg_bin_dir() {
  local initdb
  initdb=$(command -v initdb 2>/dev/null) && { dirname "$(readlink -f "$initdb")"; return 0; }
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/postgres" ] && { echo "$dir"; return 0; }
  echo "run: the PostgreSQL server binaries (initdb, postgres) were not found: $PG_ADVICE" >&2
  return 1
}

# pg_prepare DATA SOCKET_DIR: creates the cluster in DATA unless it exists, and sets
# PG_EXEC, the command that runs the server in the foreground.
pg_prepare() {
  PG_DATA=$(realpath -m "$1")
  PG_SOCKET_DIR=$(realpath -m "$2")
  PG_BIN=$(pg_bin_dir)
  local as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "run: we are root and there is no postgres user to run PostgreSQL as: $PG_ADVICE" >&2; return 1; }
    as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  mkdir -p "$PG_DATA" "$PG_SOCKET_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA" "$PG_SOCKET_DIR"
  chmod 700 "$PG_DATA"
  "${as[@]}" test -w "$PG_DATA" -a -w "$PG_SOCKET_DIR" || {
    echo "run: the postgres user cannot reach $PG_DATA or $PG_SOCKET_DIR: make their parent directories traversable (chmod o+x) or choose another DATA_DIR" >&2
    return 1
  }
  if [ ! -e "$PG_DATA/PG_VERSION" ]; then
    echo "run: creating the PostgreSQL cluster in $PG_DATA" >&2
    "${as[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C >/dev/null
  fi
  PG_EXEC=("${as[@]}" "$PG_BIN/postgres" -D "$PG_DATA" -k "$PG_SOCKET_DIR" -c listen_addresses=)
}

pg_psql() {
  local psql=$PG_BIN/psql
  [ -x "$psql" ] || psql=psql
  "$psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -U postgres -d postgres -c "$1"
}

# Until the server answers a query (the socket appears before crash recovery ends); 30 s at most.
pg_wait_ready() {
  for _ in $(seq 300); do
    pg_psql "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "run: PostgreSQL does not answer on $PG_SOCKET_DIR after 30 s (its log is above)" >&2
  return 1
}

# pg_database_url NAME: creates database NAME unless it exists; prints its URL (the socket
# directory, percent-encoded, as the host).
pg_database_url() {
  [ -n "$(pg_psql "SELECT 1 FROM pg_database WHERE datname = '$1'")" ] || pg_psql "CREATE DATABASE $1" >/dev/null
  echo "postgresql://postgres@${PG_SOCKET_DIR//\//%2F}/$1"
}
