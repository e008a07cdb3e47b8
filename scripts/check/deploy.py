#!/usr/bin/env python3
"""Checks the deployment files against the contest's rules, without Docker.

What it checks (one line each, then `deploy: N passed, N failed`; exit 1 on any failure):
- Dockerfiles: one `FROM scratch` stage, a non-root user that owns the directories it
  copies (rootfs/), nothing run at build time (no RUN: there is no shell), every binary
  copied a binary target of the workspace, the entrypoint one of them (the build context is
  made by scripts/setup/images.sh from the static release build); Dockerfile.postgres copies only
  rootfs/ and runs PostgreSQL's server from it;
- compose.yml: lb + at least two api workers, port 9999 published by the lb alone,
  `deploy.resources.limits` on every service summing to at most 1.5 CPUs and 350 MB, bridge
  networks only, no privileged / replicas / network_mode, linux/amd64, restart policies, the
  lb's CPU weight (`cpu_shares`) above every other service's, the
  external `payment-processor` network with the workers on it and pointed at the official
  processors' names, the workers sharing one SQLite volume, the lb's API_ADDRS naming the
  workers' API_LISTEN, every image one `make images` builds (rinha-pay-<x>:latest from
  Dockerfile.<x>), no `build:`;
- compose.postgres.yml: the same rules, except that the workers share one PostgreSQL
  server instead of the SQLite volume: one DATABASE_URL, whose host is a service of the
  file running rinha-pay-postgres, on a network of each worker, its data directory on a
  named volume, the workers waiting for its healthcheck;
- compose.sim.yml: the simulators on the `payment-processor` network under the official
  names;
- every environment variable a compose file sets is one the service's binary reads, as
  the binary itself lists them: each `[env: NAME]` of `$BIN_DIR/<binary> --help`; the
  postgres service sets none;
- the submission package of compose.yml and of compose.postgres.yml (written by
  scripts/release/submission.py into a temporary folder with its default names, or for compose.yml
  the folder given with --submission): docker-compose.yml passes every rule of its file, has no `build:`, names every image with a registry and a tag, and
  has its file's services, limits, networks and volumes; info.json has the contest's
  fields, exactly (`name`, `social`, `source-code-repo`, `langs`, `storages`, `messaging`,
  `load-balancers`, `other-technologies`); README.md links the source repository named in
  info.json.

Usage: scripts/check/deploy.py [repo root] [--submission DIR]   (needs PyYAML: make deps)
Variables: BIN_DIR (target/debug; a relative one is taken from the repo root checked): where
the built binaries are (`cargo build --workspace --bins`, which `make check` runs first).
"""
import argparse
import copy
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("lib", "release")]  # scripts/lib, scripts/release
from compose_limits import CONTEST_MAX_CPUS as MAX_CPUS, CONTEST_MAX_MEMORY_MB as MAX_MEMORY_MB, memory_bytes  # noqa: E402
import submission  # noqa: E402

OFFICIAL = {
    "PROCESSOR_DEFAULT_URL": "http://payment-processor-default:8080",
    "PROCESSOR_FALLBACK_URL": "http://payment-processor-fallback:8080",
}
# An image of ours, under any registry and tag: the <x> of Dockerfile.<x>.
# The stack files: the contest deployment and its PostgreSQL variant.
STACK_FILES = ["compose.yml", "compose.postgres.yml"]
# Dockerfile.postgres's entrypoint: the server of Debian's PostgreSQL, put in rootfs/ by
# scripts/setup/images.sh; a service running that image is "postgres".
POSTGRES_SERVER = re.compile(r"^/usr/lib/postgresql/\d+/bin/postgres$")
POSTGRES = "postgres"
OUR_IMAGE = re.compile(r"^(?:(?P<registry>[^/]+)/(?:[^/]+/)*)?rinha-pay-(?P<x>[a-z]+):(?P<tag>[\w][\w.-]*)$")
INFO_FIELDS = submission.INFO_FIELDS

results = []


def check(name, ok, why=""):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok or not why else ': ' + why}")


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def network_names(service):
    nets = service.get("networks") or []
    return list(nets) if isinstance(nets, (list, dict)) else []


def load_yaml(path, label):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        check(f"{label} parses", False, str(e))
        return None


# ---- Dockerfiles ----

def dockerfile_instructions(path):
    """(instruction, arguments) pairs, with line continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        lines.append((word.upper(), rest.strip()))
        current = ""
    return lines


def cargo_binaries(root):
    """{package name: [binary target names]} of the workspace, from `cargo metadata`."""
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout
    meta = json.loads(out)
    return {p["name"]: [t["name"] for t in p["targets"] if "bin" in t["kind"]] for p in meta["packages"]}


def check_dockerfile(root, name, all_binaries):
    """Checks Dockerfile <name>; returns the binary its ENTRYPOINT runs, or None."""
    path = root / name
    if not path.exists():
        check(f"{name} exists", False, "missing")
        return None
    ins = dockerfile_instructions(path)
    froms = [re.sub(r"--platform=\S+\s*", "", args).split()[0] for word, args in ins if word == "FROM"]
    check(f"{name}: one stage, FROM scratch (nothing pulled, nothing compiled)", froms == ["scratch"], f"FROM {froms}")
    users = [args for word, args in ins if word == "USER"]
    user = users[-1] if users else "root"
    check(f"{name}: non-root user", user.split(":")[0] not in ("0", "root"), f"USER {user}")
    check(f"{name}: nothing runs at build time (no RUN: no shell in scratch)", all(w != "RUN" for w, _ in ins))
    copied = []
    for word, args in ins:
        if word != "COPY":
            continue
        parts = args.split()
        chown = next((a.split("=", 1)[1] for a in parts if a.startswith("--chown=")), None)
        srcs = [a for a in parts if not a.startswith("--")][:-1]
        for src in srcs:
            if src.rstrip("/") == "rootfs":
                check(f"{name}: rootfs/ is owned by the runtime user", chown == user, f"--chown={chown}, USER {user}")
            else:
                check(f"{name}: COPY {src} is a binary of the workspace", src in all_binaries,
                      "scripts/setup/images.sh puts only workspace binaries in the context")
                copied.append(src)
    entry = [args for word, args in ins if word == "ENTRYPOINT"]
    try:
        program = json.loads(entry[-1])[0] if entry else None
    except (ValueError, IndexError):
        program = None
    if name == f"Dockerfile.{POSTGRES}":
        ok = bool(program and POSTGRES_SERVER.match(program)) and not copied
        check(f"{name}: ENTRYPOINT runs PostgreSQL's server from rootfs/", ok, f"ENTRYPOINT {entry}, COPY {copied}")
        return POSTGRES if ok else None
    program = program.lstrip("/") if program else None
    check(f"{name}: ENTRYPOINT runs a binary it copies", program in copied, f"ENTRYPOINT {entry} of {copied}")
    return program if program in copied else None


# ---- compose files ----

def bin_dir(root):
    """Where the built binaries are: BIN_DIR (target/debug), relative to the repo root checked."""
    path = Path(os.environ.get("BIN_DIR") or "target/debug")
    return path if path.is_absolute() else root / path


@functools.lru_cache(maxsize=None)
def variables_read(program):
    """(the environment variables the binary at `program` reads, why not): the `[env: NAME]`
    of its `--help` (run with an empty environment), or (None, why) when it cannot tell."""
    try:
        res = subprocess.run([program, "--help"], env={}, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{e}; build the binaries first: cargo build --workspace --bins"
    names = set(re.findall(r"\[env:\s*([A-Z][A-Z0-9_]*)", res.stdout))
    if res.returncode != 0 or not names:
        return None, f"exit {res.returncode}, {len(names)} variables listed: {res.stderr.strip()[:200]}"
    return names, ""


def image_binary(service, dockerfile_bins):
    """The binary a service runs: the ENTRYPOINT of Dockerfile.<x> for image rinha-pay-<x>."""
    m = OUR_IMAGE.match(str(service.get("image", "")))
    return dockerfile_bins.get(f"Dockerfile.{m.group('x')}") if m else None


def check_env_read(root, label, services, dockerfile_bins):
    for name, svc in services.items():
        binary = image_binary(svc, dockerfile_bins)
        if binary is None:
            continue  # check_images has said so
        if binary == POSTGRES:
            check(f"{label}: {name} sets no environment variable (settings: Dockerfile.postgres's CMD)",
                  not env_of(svc), f"sets {sorted(env_of(svc))}")
            continue
        program = bin_dir(root) / binary
        known, why = variables_read(str(program))
        if known is None:
            check(f"{label}: {name}: `{binary} --help` lists the variables {binary} reads", False, f"{program}: {why}")
            continue
        for var in env_of(svc):
            check(f"{label}: {name} sets {var}, which `{binary}` reads", var in known,
                  f"not an [env: ...] of `{program} --help`")


def check_images(label, services, dockerfile_bins, published):
    """Local files: rinha-pay-<x>:latest, built by make images. The submission: a registry and a tag."""
    for name, svc in services.items():
        image = str(svc.get("image", ""))
        m = OUR_IMAGE.match(image)
        check(f"{label}: {name} runs an image of ours ({image})", m and f"Dockerfile.{m.group('x')}" in dockerfile_bins,
              "expected [registry/user/]rinha-pay-<x>:<tag> with a Dockerfile.<x>")
        check(f"{label}: {name} has no build:", "build" not in svc, "images come from make images, not compose")
        if m and published:
            registry = m.group("registry") or ""
            check(f"{label}: {name}'s image names a registry and a tag", ("." in registry or ":" in registry
                  or registry == "localhost") and m.group("tag") != "latest",
                  "the contest pulls it: registry.example/user/name:tag, not latest")
        elif m:
            check(f"{label}: {name}'s image is the one make images tags", m.group("registry") is None
                  and m.group("tag") == "latest", f"{image}")


def check_common_service_rules(label, services):
    for name, svc in services.items():
        check(f"{label}: {name} is linux/amd64", svc.get("platform") == "linux/amd64", f"platform={svc.get('platform')}")
        check(f"{label}: {name} has a restart policy", svc.get("restart") in ("always", "unless-stopped", "on-failure"),
              f"restart={svc.get('restart')}")
        check(f"{label}: {name} is not privileged", not svc.get("privileged"))
        check(f"{label}: {name} has no network_mode", "network_mode" not in svc, f"network_mode={svc.get('network_mode')}")
        check(f"{label}: {name} has no replicas", "replicas" not in (svc.get("deploy") or {}) and "scale" not in svc)


def check_stack(label, doc, dockerfile_bins):
    """The contest's rules on a stack file: compose.yml, or the submission's docker-compose.yml."""
    services = doc.get("services") or {}
    networks = doc.get("networks") or {}
    workers = [n for n, s in services.items() if image_binary(s, dockerfile_bins) == "api"]
    check(f"{label}: an lb service", "lb" in services)
    check(f"{label}: at least two api workers", len(workers) >= 2, f"workers: {workers}")
    check_common_service_rules(label, services)
    lb_shares = (services.get("lb") or {}).get("cpu_shares", 1024)
    others = max((s.get("cpu_shares", 1024) for n, s in services.items() if n != "lb"), default=1024)
    check(f"{label}: the lb has the largest CPU weight (its 202 path first when the cores are contended)",
          lb_shares > others, f"lb cpu_shares={lb_shares}, others up to {others}")

    cpus = mem = 0.0
    for name, svc in services.items():
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        has = "cpus" in limits and "memory" in limits
        check(f"{label}: {name} has deploy.resources.limits cpus and memory", has, f"limits={limits}")
        if has:
            cpus += float(limits["cpus"])
            mem += memory_bytes(limits["memory"]) / 2**20
    check(f"{label}: CPU limits sum to {cpus:g} <= {MAX_CPUS}", cpus <= MAX_CPUS + 1e-9)
    check(f"{label}: memory limits sum to {mem:g} MB <= {MAX_MEMORY_MB} MB", mem <= MAX_MEMORY_MB + 1e-9)

    lb = services.get("lb") or {}
    published = [str(p) for p in lb.get("ports") or []]
    check(f"{label}: lb publishes port 9999", any(re.fullmatch(r"(\S+:)?9999:\d+(/tcp)?", p) for p in published),
          f"ports={published}")
    others = [n for n, s in services.items() if n != "lb" and s.get("ports")]
    check(f"{label}: only the lb publishes a port", not others, f"also: {others}")

    for net, spec in networks.items():
        spec = spec or {}
        if spec.get("external"):
            continue
        check(f"{label}: network {net} is bridge", spec.get("driver", "bridge") == "bridge", f"driver={spec.get('driver')}")
    pp = networks.get("payment-processor") or {}
    check(f"{label}: payment-processor network is external", pp.get("external") is True)
    for w in workers:
        svc = services[w]
        env = env_of(svc)
        check(f"{label}: {w} is on the payment-processor network", "payment-processor" in network_names(svc))
        for var, url in OFFICIAL.items():
            check(f"{label}: {w} {var}={url}", env.get(var) == url, f"is {env.get(var)}")

    if any("DATABASE_URL" in env_of(services[w]) for w in workers):
        check_postgres(label, doc, workers, dockerfile_bins)
    else:
        check_sqlite(label, doc, workers)

    listens = {env_of(services[w]).get("API_LISTEN") for w in workers}
    addrs = set(env_of(lb).get("API_ADDRS", "").split(","))
    check(f"{label}: lb API_ADDRS are the workers' API_LISTEN", listens == addrs and None not in listens,
          f"API_ADDRS={sorted(addrs)} API_LISTEN={sorted(map(str, listens))}")
    socket_dirs = {a.rsplit("/", 1)[0] for a in addrs if a.startswith("unix:")}
    for d in socket_dirs:
        path = d[len("unix:"):]
        for name in ["lb", *workers]:
            vols = [v.split(":") for v in services[name].get("volumes") or [] if isinstance(v, str)]
            check(f"{label}: {name} mounts the socket directory {path}", any(dst == path for _, dst, *_ in vols))


def named_mounts(doc, service):
    """(volume, path) of every named volume the service mounts."""
    vols = [v.split(":") for v in doc["services"][service].get("volumes") or [] if isinstance(v, str)]
    return {(src, dst) for src, dst, *_ in vols if src in (doc.get("volumes") or {})}


def check_sqlite(label, doc, workers):
    """One SQLite file: every worker mounts the same named volume and points DATABASE_PATH into it."""
    mounts = {}
    for w in workers:
        db = env_of(doc["services"][w]).get("DATABASE_PATH", "")
        mounts[w] = {(src, dst) for src, dst in named_mounts(doc, w) if db.startswith(dst.rstrip("/") + "/")}
    shared = set.intersection(*mounts.values()) if mounts else set()
    check(f"{label}: the workers share the SQLite file on one named volume", len(shared) == 1, f"mounts={mounts}")


def check_postgres(label, doc, workers, dockerfile_bins):
    """One PostgreSQL server: the workers' one DATABASE_URL names a service of ours running
    the postgres image, which they reach and wait for, its data on a named volume."""
    services = doc["services"]
    urls = {env_of(services[w]).get("DATABASE_URL") for w in workers}
    m = re.fullmatch(r"postgres(?:ql)?://(?:[^@/]*@)?([^:/?]+)(?::\d+)?/\w+", next(iter(urls)) or "") if len(urls) == 1 else None
    host = m.group(1) if m else None
    server = services.get(host) or {}
    check(f"{label}: the workers share one PostgreSQL server (one DATABASE_URL naming a service of this file)",
          len(urls) == 1 and image_binary(server, dockerfile_bins) == POSTGRES, f"DATABASE_URL {sorted(map(str, urls))}")
    if image_binary(server, dockerfile_bins) != POSTGRES:
        return
    for w in workers:
        check(f"{label}: {w} shares a network with {host}",
              set(network_names(services[w])) & set(network_names(server)))
        depends = services[w].get("depends_on") or {}
        condition = (depends.get(host) or {}).get("condition") if isinstance(depends, dict) else None
        check(f"{label}: {w} waits for {host}'s healthcheck", condition == "service_healthy" and server.get("healthcheck"),
              f"depends_on={depends}")
    check(f"{label}: {host} keeps its data directory on a named volume",
          any(dst == "/var/lib/postgresql/data" for _, dst in named_mounts(doc, host)))


def check_compose_sim(root, dockerfile_bins):
    doc = load_yaml(root / "compose.sim.yml", "compose.sim.yml")
    if doc is None:
        return
    services = doc.get("services") or {}
    check_common_service_rules("compose.sim.yml", services)
    check_images("compose.sim.yml", services, dockerfile_bins, published=False)
    net = (doc.get("networks") or {}).get("payment-processor") or {}
    check("compose.sim.yml: creates the network named payment-processor", net.get("name") == "payment-processor"
          and not net.get("external") and net.get("driver", "bridge") == "bridge")
    for var, url in OFFICIAL.items():
        host, port = re.match(r"http://([^:]+):(\d+)", url).groups()
        svc = services.get(host) or {}
        listen = env_of(svc).get("SIM_LISTEN", "")
        check(f"compose.sim.yml: {host} answers on :{port} of the payment-processor network",
              "payment-processor" in network_names(svc) and listen.endswith(f":{port}"), f"SIM_LISTEN={listen}")
    check_env_read(root, "compose.sim.yml", services, dockerfile_bins)


def without_images(doc):
    """A stack file's services, networks and volumes with the image names left out."""
    services = {n: {k: v for k, v in s.items() if k != "image"} for n, s in (doc.get("services") or {}).items()}
    return services, doc.get("networks"), doc.get("volumes")


def check_submission(folder, compose, dockerfile_bins, root, name="submission"):
    label = f"{name} docker-compose.yml"
    doc = load_yaml(folder / "docker-compose.yml", label)
    if doc is None:
        return
    check_stack(label, doc, dockerfile_bins)
    check_images(label, doc.get("services") or {}, dockerfile_bins, published=True)
    check_env_read(root, label, doc.get("services") or {}, dockerfile_bins)
    check(f"{label}: compose.yml's services, limits, networks and volumes" if name == "submission"
          else f"{label}: its file's services, limits, networks and volumes",
          without_images(doc) == without_images(submission.published_compose(copy.deepcopy(compose), "", "x")[0]),
          "regenerate it: make submission")
    try:
        info = json.loads((folder / "info.json").read_text())
    except (OSError, ValueError) as e:
        check(f"{name} info.json parses", False, str(e))
        return
    check(f"{name} info.json: exactly the contest's keys", isinstance(info, dict) and set(info) == set(INFO_FIELDS),
          f"keys {sorted(info) if isinstance(info, dict) else type(info).__name__}, expected {sorted(INFO_FIELDS)}")
    if not isinstance(info, dict):
        return
    for field, kind in INFO_FIELDS.items():
        value = info.get(field)
        ok = isinstance(value, kind) and (kind is str and value.strip() != ""
                                          or kind is list and all(isinstance(x, str) and x for x in value))
        check(f"{name} info.json: {field} is a {'non-empty string' if kind is str else 'list of strings'}", ok,
              f"{field}={value!r}")
    source = info.get("source-code-repo") if isinstance(info.get("source-code-repo"), str) else ""
    check(f"{name} info.json: source-code-repo is a URL", source.startswith("https://"), source)
    readme = folder / "README.md"
    check(f"{name} README.md links the source repository", readme.exists() and source and source in readme.read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("--submission", type=Path, help="check this folder instead of a freshly written one")
    args = ap.parse_args()
    root = args.root
    binaries = cargo_binaries(root)
    crate_of_bin = {b: pkg for pkg, bins in binaries.items() for b in bins}
    dockerfile_bins = {}
    for path in sorted(root.glob("Dockerfile.*")):
        binary = check_dockerfile(root, path.name, crate_of_bin)
        if binary:
            dockerfile_bins[path.name] = binary

    stacks = {}
    for file in STACK_FILES:
        stacks[file] = compose = load_yaml(root / file, file)
        if compose is not None:
            check_stack(file, compose, dockerfile_bins)
            check_images(file, compose.get("services") or {}, dockerfile_bins, published=False)
            check_env_read(root, file, compose.get("services") or {}, dockerfile_bins)
    check_compose_sim(root, dockerfile_bins)
    for file, compose in stacks.items():
        if compose is None:
            continue
        label = "submission" if file == "compose.yml" else f"submission of {file}"
        if args.submission and file == "compose.yml":
            check_submission(args.submission, compose, dockerfile_bins, root, label)
            continue
        with tempfile.TemporaryDirectory(prefix="submission-") as folder:
            try:
                submission.write_package(root, Path(folder), submission.DEFAULT_PREFIX, "check", compose_file=file)
            except SystemExit as e:  # the file names an image make images does not build
                check(f"scripts/release/submission.py writes the package of {file}", False, str(e))
            else:
                check_submission(Path(folder), compose, dockerfile_bins, root, label)

    passed, failed = results.count(True), results.count(False)
    print(f"deploy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
