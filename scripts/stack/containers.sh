# The container deployment as the contest runs it, for scripts/bench/bench.sh (DEPLOY=compose) and,
# through it, `make compose-test`. Sourced, not run: functions only.
#
#   containers_up WORK        our simulators (compose.sim.yml: the payment-processor network,
#                             :8001, :8002), then the submission package written to
#                             WORK/submission by scripts/release/submission.py from CONTAINERS_COMPOSE
#                             (the file the contest runs: published image names, tagged on
#                             the local images, no build:), started with `docker compose up`;
#                             waits until :9999 answers a summary
#   containers_pids RUN_DIR   <service>.pid of every running container's process (lb,
#                             api1, api2, floor, sim-default, sim-fallback: the names
#                             scripts/stack/run.sh uses), for scripts/bench/sampler.py
#   containers_metrics        NAME=URL of every service's GET /metrics for
#                             scripts/bench/sampler.py: the lb and each worker at its unix
#                             socket (LB_METRICS_LISTEN, API_LISTEN in compose.yml) seen from
#                             the host, in the socket volume's directory
#   containers_database       where the host reads the workers' payments: the path of the
#                             SQLite file they share (compose.yml's DATABASE_PATH in its
#                             named volume), or with compose.postgres.yml the DATABASE_URL
#                             with the PostgreSQL container's address on its network
#   containers_limits_json    {service: {cpus, memory_limit_mb, peak_memory_mb,
#                             cpu_throttled_periods, cgroup_cpu_seconds}} of every limited
#                             service of the stack
#                             (lb, api1, api2, and postgres with STORAGE=postgres), from
#                             `docker inspect` (what the engine enforces) and the containers'
#                             cgroups
#   containers_logs FILE      every container's log of the stack into FILE; prints how many
#                             lines warn or err and the last 20 of them (quiet by default,
#                             so any is worth reading), so a failed run in CI says why
#   containers_stack_down     removes the stack's containers and volumes
#   floor_up CPUS MEMORY      `floor` (from the sim image) on :9999 under those limits
#   containers_down           removes everything above, by name; safe to call twice
#
# Everything runs under fixed names (the compose projects' and CONTAINERS_FLOOR), so a run
# that failed half-way is cleaned by the next containers_down.
#
# STORAGE picks the stack's compose file, CONTAINERS_COMPOSE: sqlite (default) compose.yml,
# postgres compose.postgres.yml (its images: scripts/setup/images.sh postgres). Both use the
# project name rinha-pay, so either one's leftovers are removed by containers_down.

case ${STORAGE:-sqlite} in
  sqlite) CONTAINERS_COMPOSE=compose.yml ;;
  postgres) CONTAINERS_COMPOSE=compose.postgres.yml ;;
  *) echo "containers: STORAGE=$STORAGE: expected sqlite or postgres" >&2; return 2 ;;
esac
CONTAINERS_STACK_PROJECT=rinha-pay
CONTAINERS_PROCESSORS_PROJECT=rinha-pay-processors
CONTAINERS_FLOOR=rinha-pay-floor
CONTAINERS_SUBMISSION=""

# Waits until URL answers 200 (docker's port proxy accepts connections before the
# container's process listens, so a TCP probe is not enough).
wait_http() {
  local url=$1 secs=${2:-60}
  python3 - "$url" "$secs" <<'EOF'
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(f"containers: {url} did not answer 200 within {sys.argv[2]} s")
EOF
}

# The published ports must be ours to take: a native stack or another container on
# them would be measured instead.
ports_free() {
  local port
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "containers: port $port is taken; stop what listens there (make run? docker ps?)" >&2
      return 1
    fi
  done
}

containers_up() {
  local work=$1
  bash scripts/setup/docker_engine.sh
  containers_down
  ports_free 9999 8001 8002
  docker compose -f compose.sim.yml up -d --quiet-pull
  wait_http http://127.0.0.1:8001/payments/service-health
  wait_http http://127.0.0.1:8002/payments/service-health
  CONTAINERS_SUBMISSION=$work/submission
  python3 scripts/release/submission.py --compose "$CONTAINERS_COMPOSE" --out "$CONTAINERS_SUBMISSION"
  docker compose -f "$CONTAINERS_SUBMISSION/docker-compose.yml" up -d --quiet-pull
  wait_http http://127.0.0.1:9999/payments-summary
}

# The container id of service $2 of compose project $1.
container_of() {
  docker ps -q --filter "label=com.docker.compose.project=$1" --filter "label=com.docker.compose.service=$2"
}

containers_pids() {
  local run_dir=$1 name id
  mkdir -p "$run_dir"
  for name in lb api1 api2 floor sim-default sim-fallback; do
    case $name in
      floor) id=$(docker ps -q --filter "name=^$CONTAINERS_FLOOR\$") ;;
      sim-*) id=$(container_of "$CONTAINERS_PROCESSORS_PROJECT" "payment-processor-${name#sim-}") ;;
      *) id=$(container_of "$CONTAINERS_STACK_PROJECT" "$name") ;;
    esac
    [ -n "$id" ] && docker inspect --format '{{.State.Pid}}' "$id" >"$run_dir/$name.pid"
  done
  return 0
}

containers_metrics() {
  local sockets
  sockets=$(docker volume inspect --format '{{.Mountpoint}}' "${CONTAINERS_STACK_PROJECT}_sockets")
  python3 - "$sockets" "$CONTAINERS_COMPOSE" <<'EOF'
import sys, yaml
for name, svc in yaml.safe_load(open(sys.argv[2]))["services"].items():
    env = svc.get("environment") or {}
    # The lb's metrics are off its public port, on the sockets volume like the workers'.
    listen = env.get("API_LISTEN") or env.get("LB_METRICS_LISTEN", "")
    if listen.startswith("unix:"):
        print(f"{name}=unix:{sys.argv[1]}/{listen.rsplit('/', 1)[1]}")
EOF
}

containers_database() {
  python3 - "$CONTAINERS_STACK_PROJECT" "$CONTAINERS_COMPOSE" <<'EOF'
import subprocess, sys, urllib.parse, yaml
project, compose = sys.argv[1], yaml.safe_load(open(sys.argv[2]))
api = compose["services"]["api1"]
env = api.get("environment") or {}
run = lambda *argv: subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
if env.get("DATABASE_URL"):
    # PostgreSQL: its container's address on the compose network, which the host reaches.
    url = urllib.parse.urlsplit(env["DATABASE_URL"])
    ids = run("docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
              "--filter", f"label=com.docker.compose.service={url.hostname}").split()
    ips = run("docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
              *ids[:1]).split() if ids else []
    if not ips:
        sys.exit(f"containers: no address of the {url.hostname} container")
    print(url._replace(netloc=f"{url.username}:{url.password}@{ips[0]}:{url.port or 5432}").geturl())
    sys.exit(0)
path = env["DATABASE_PATH"]
volume, target = next(v.split(":")[:2] for v in api["volumes"] if path.startswith(v.split(":")[1] + "/"))
print(run("docker", "volume", "inspect", "--format", "{{.Mountpoint}}", f"{project}_{volume}") + path[len(target):])
EOF
}

containers_limits_json() {
  local svc id pid cg
  for svc in $(python3 scripts/lib/compose_limits.py "$CONTAINERS_COMPOSE" | cut -d' ' -f1); do
    id=$(container_of "$CONTAINERS_STACK_PROJECT" "$svc")
    pid=$(docker inspect --format '{{.State.Pid}}' "$id")
    cg=$(bash scripts/stack/cgroup.sh of "$pid")
    echo "$svc $(docker inspect --format '{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}' "$id")" \
         "$(bash scripts/stack/cgroup.sh stats "$cg") $(bash scripts/stack/cgroup.sh cpu "$cg")"
  done | python3 -c '
import json, sys
print(json.dumps({s: {"cpus": int(c) / 1e9, "memory_limit_mb": round(int(m) / 2**20, 1),
                      "peak_memory_mb": round(int(p) / 2**20, 1), "cpu_throttled_periods": int(t),
                      "cgroup_cpu_seconds": float(u)}
                  for s, c, m, p, t, u in (l.split() for l in sys.stdin)}))'
}

containers_logs() {
  local file=$1 count
  docker compose -p "$CONTAINERS_STACK_PROJECT" logs --no-color --timestamps >"$file" 2>&1 || true
  count=$(grep -cE '(WARN|ERROR)' "$file" || true)
  echo "containers: $count warning or error lines in the stack's logs (all in $file)"
  grep -E '(WARN|ERROR)' "$file" | tail -n 20 || true
}

containers_stack_down() {
  docker compose -p "$CONTAINERS_STACK_PROJECT" down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
}

floor_up() {
  local cpus=$1 memory=$2
  docker run -d --name "$CONTAINERS_FLOOR" --cpus "$cpus" --memory "$memory" -p 9999:9999 \
    -e FLOOR_LISTEN=0.0.0.0:9999 --entrypoint /floor rinha-pay-sim:latest >/dev/null
  wait_http http://127.0.0.1:9999/payments-summary
}

containers_down() {
  docker rm -f "$CONTAINERS_FLOOR" >/dev/null 2>&1 || true
  containers_stack_down
  docker compose -p "$CONTAINERS_PROCESSORS_PROJECT" down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
}
