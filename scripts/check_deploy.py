#!/usr/bin/env python3
"""Checks the deployment files against the contest rules, on a machine without Docker.

What it checks (one line each, then `N passed, N failed`; exit 1 on any failure):
- compose.yml: lb + at least two api workers, port 9999 published, `deploy.resources.limits`
  on every service summing to at most 1.5 CPUs and 350 MB, bridge networks only, no
  privileged / replicas / network_mode, linux/amd64, restart policies, the external
  `payment-processor` network with the workers on it and pointed at the official
  processors' names, the workers sharing one SQLite volume, the lb's API_ADDRS naming the
  workers' API_LISTEN;
- compose.sim.yml: the simulators on the `payment-processor` network under the official
  names;
- every environment variable either compose file sets is one the service's binary reads
  (a `pub const` in that crate's `src/config.rs`);
- Dockerfiles: multi-stage, static musl release build, `scratch`/distroless runtime,
  non-root user, and every path they COPY exists in the build context or, for the built
  binary, is a binary target of the package they build.

Usage: scripts/check_deploy.py [repo root]   (needs PyYAML; `make deps` installs it)
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from compose_limits import CONTEST_MAX_CPUS as MAX_CPUS, CONTEST_MAX_MEMORY_MB as MAX_MEMORY_MB, memory_bytes

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
MUSL = "x86_64-unknown-linux-musl"
OFFICIAL = {
    "PROCESSOR_DEFAULT_URL": "http://payment-processor-default:8080",
    "PROCESSOR_FALLBACK_URL": "http://payment-processor-fallback:8080",
}

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


def load_yaml(name):
    try:
        return yaml.safe_load((ROOT / name).read_text())
    except (OSError, yaml.YAMLError) as e:
        check(f"{name} parses", False, str(e))
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


def cargo_binaries():
    """{package name: [binary target names]} of the workspace, from `cargo metadata`."""
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    meta = json.loads(out)
    return {p["name"]: [t["name"] for t in p["targets"] if "bin" in t["kind"]] for p in meta["packages"]}


def dockerignored(first_component):
    ignore = ROOT / ".dockerignore"
    if not ignore.exists():
        return False
    patterns = [l.strip().rstrip("/") for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")]
    return first_component in patterns


def check_dockerfile(name, binaries):
    path = ROOT / name
    if not path.exists():
        check(f"{name} exists", False, "missing")
        return None
    ins = dockerfile_instructions(path)
    froms = [args for word, args in ins if word == "FROM"]
    stages = {}
    for args in froms:
        m = re.search(r"\bAS\s+(\S+)", args, re.I)
        if m:
            stages[m.group(1).lower()] = args
    check(f"{name}: multi-stage build", len(froms) >= 2, f"{len(froms)} FROM")
    final = re.sub(r"--platform=\S+\s*", "", froms[-1]).split()[0] if froms else ""
    check(f"{name}: minimal runtime image ({final})", final == "scratch" or final.startswith("gcr.io/distroless/"),
          "expected scratch or distroless")
    # A FROM of an earlier stage inherits its platform; every image pulled must be amd64.
    pulled = [f for f in froms if re.sub(r"--platform=\S+\s*", "", f).split()[0].lower() not in stages]
    check(f"{name}: images pinned to linux/amd64", pulled and all("--platform=linux/amd64" in f for f in pulled),
          "every FROM of an image needs --platform=linux/amd64")
    users = [args for word, args in ins if word == "USER"]
    check(f"{name}: non-root user", users and users[-1].split(":")[0] not in ("0", "root"), f"USER {users}")
    runs = " ".join(args for word, args in ins if word == "RUN")
    build = re.search(rf"cargo build --release --target {MUSL} -p (\S+) --bin (\S+)", runs)
    check(f"{name}: static musl release build", build, f"no `cargo build --release --target {MUSL} -p P --bin B`")
    check(f"{name}: dependencies in their own layer", "cargo chef cook" in runs, "no `cargo chef cook` step")
    if not build:
        return None
    package, binary = build.group(1), build.group(2)
    check(f"{name}: builds binary `{binary}` of package `{package}`", binary in binaries.get(package, []),
          f"cargo metadata has {binaries.get(package)}")
    for word, args in ins:
        if word != "COPY":
            continue
        parts = [a for a in args.split() if not a.startswith("--chown")]
        source_stage = next((a.split("=", 1)[1] for a in parts if a.startswith("--from=")), None)
        srcs = [a for a in parts if not a.startswith("--")][:-1]
        for src in srcs:
            if source_stage is None:
                first = src.lstrip("./").split("/")[0]
                ok = src in (".", "./") or ((ROOT / src).exists() and not dockerignored(first))
                check(f"{name}: COPY {src} is in the build context", ok, "missing or excluded by .dockerignore")
            elif src.startswith(f"/src/target/{MUSL}/release/"):
                built = src.rsplit("/", 1)[1]
                local = ROOT / "target" / MUSL / "release" / built
                where = "built here" if local.exists() else f"{MUSL} not built here; it is a binary target"
                check(f"{name}: COPY {src} ({where})", built == binary and (built in binaries.get(package, [])),
                      f"the build stage builds `{binary}`, not `{built}`")
            elif source_stage.lower() in stages:
                made = src.rstrip("/")
                produced = made in runs or made.endswith("recipe.json")
                check(f"{name}: COPY --from={source_stage} {src} is made by that stage", produced,
                      "no RUN creates it")
            else:
                check(f"{name}: COPY --from={source_stage} names a stage", False, "unknown stage")
    return binary


# ---- compose files ----

def config_consts(crate):
    """Environment variable names the crate reads: the `pub const X: &str = "X"` of src/config.rs."""
    path = ROOT / crate / "src" / "config.rs"
    if not path.exists():
        return set()
    return set(re.findall(r'pub const \w+: &str = "([A-Z0-9_]+)"', path.read_text()))


def service_binary(service, dockerfile_bins):
    dockerfile = (service.get("build") or {}).get("dockerfile")
    return dockerfile, dockerfile_bins.get(dockerfile)


def check_env_read(file, services, dockerfile_bins, crate_of_bin):
    for name, svc in services.items():
        dockerfile, binary = service_binary(svc, dockerfile_bins)
        if binary is None:
            check(f"{file}: {name} is built from one of our Dockerfiles", False, f"build.dockerfile={dockerfile}")
            continue
        known = config_consts(crate_of_bin[binary])
        for var in env_of(svc):
            check(f"{file}: {name} sets {var}, which `{binary}` reads", var in known,
                  f"not a pub const in {crate_of_bin[binary]}/src/config.rs")


def check_common_service_rules(file, services):
    for name, svc in services.items():
        check(f"{file}: {name} is linux/amd64", svc.get("platform") == "linux/amd64", f"platform={svc.get('platform')}")
        check(f"{file}: {name} has a restart policy", svc.get("restart") in ("always", "unless-stopped", "on-failure"),
              f"restart={svc.get('restart')}")
        check(f"{file}: {name} is not privileged", not svc.get("privileged"))
        check(f"{file}: {name} has no network_mode", "network_mode" not in svc, f"network_mode={svc.get('network_mode')}")
        check(f"{file}: {name} has no replicas", "replicas" not in (svc.get("deploy") or {}) and "scale" not in svc)
        dockerfile = (svc.get("build") or {}).get("dockerfile")
        check(f"{file}: {name} builds from an existing {dockerfile}", dockerfile and (ROOT / dockerfile).exists())


def check_compose(dockerfile_bins, crate_of_bin):
    doc = load_yaml("compose.yml")
    if doc is None:
        return
    services = doc.get("services") or {}
    networks = doc.get("networks") or {}
    workers = [n for n, s in services.items() if dockerfile_bins.get((s.get("build") or {}).get("dockerfile")) == "api"]
    check("compose.yml: an lb service", "lb" in services)
    check("compose.yml: at least two api workers", len(workers) >= 2, f"workers: {workers}")
    check_common_service_rules("compose.yml", services)

    cpus = mem = 0.0
    for name, svc in services.items():
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        has = "cpus" in limits and "memory" in limits
        check(f"compose.yml: {name} has deploy.resources.limits cpus and memory", has, f"limits={limits}")
        if has:
            cpus += float(limits["cpus"])
            mem += memory_bytes(limits["memory"]) / 2**20
    check(f"compose.yml: CPU limits sum to {cpus:g} <= {MAX_CPUS}", cpus <= MAX_CPUS + 1e-9)
    check(f"compose.yml: memory limits sum to {mem:g} MB <= {MAX_MEMORY_MB} MB", mem <= MAX_MEMORY_MB + 1e-9)

    lb = services.get("lb") or {}
    published = [str(p) for p in lb.get("ports") or []]
    check("compose.yml: lb publishes port 9999", any(re.fullmatch(r"(\S+:)?9999:\d+(/tcp)?", p) for p in published),
          f"ports={published}")
    others = [n for n, s in services.items() if n != "lb" and s.get("ports")]
    check("compose.yml: only the lb publishes a port", not others, f"also: {others}")

    for net, spec in networks.items():
        spec = spec or {}
        if spec.get("external"):
            continue
        check(f"compose.yml: network {net} is bridge", spec.get("driver", "bridge") == "bridge", f"driver={spec.get('driver')}")
    pp = networks.get("payment-processor") or {}
    check("compose.yml: payment-processor network is external", pp.get("external") is True)
    for w in workers:
        svc = services[w]
        env = env_of(svc)
        check(f"compose.yml: {w} is on the payment-processor network", "payment-processor" in network_names(svc))
        for var, url in OFFICIAL.items():
            check(f"compose.yml: {w} {var}={url}", env.get(var) == url, f"is {env.get(var)}")

    # One SQLite file: every worker mounts the same named volume and points DATABASE_PATH into it.
    mounts = {}
    for w in workers:
        env = env_of(services[w])
        db = env.get("DATABASE_PATH", "")
        vols = [v.split(":") for v in services[w].get("volumes") or [] if isinstance(v, str)]
        mounts[w] = {(src, dst) for src, dst, *_ in vols if src in (doc.get("volumes") or {}) and db.startswith(dst.rstrip("/") + "/")}
    shared = set.intersection(*mounts.values()) if mounts else set()
    check("compose.yml: the workers share the SQLite file on one named volume", len(shared) == 1, f"mounts={mounts}")

    listens = {env_of(services[w]).get("API_LISTEN") for w in workers}
    addrs = set(env_of(lb).get("API_ADDRS", "").split(","))
    check("compose.yml: lb API_ADDRS are the workers' API_LISTEN", listens == addrs and None not in listens,
          f"API_ADDRS={sorted(addrs)} API_LISTEN={sorted(map(str, listens))}")
    socket_dirs = {a.rsplit("/", 1)[0] for a in addrs if a.startswith("unix:")}
    for d in socket_dirs:
        path = d[len("unix:"):]
        for name in ["lb", *workers]:
            vols = [v.split(":") for v in services[name].get("volumes") or [] if isinstance(v, str)]
            check(f"compose.yml: {name} mounts the socket directory {path}", any(dst == path for _, dst, *_ in vols))
    check_env_read("compose.yml", services, dockerfile_bins, crate_of_bin)


def check_compose_sim(dockerfile_bins, crate_of_bin):
    doc = load_yaml("compose.sim.yml")
    if doc is None:
        return
    services = doc.get("services") or {}
    check_common_service_rules("compose.sim.yml", services)
    net = (doc.get("networks") or {}).get("payment-processor") or {}
    check("compose.sim.yml: creates the network named payment-processor", net.get("name") == "payment-processor"
          and not net.get("external") and net.get("driver", "bridge") == "bridge")
    for var, url in OFFICIAL.items():
        host, port = re.match(r"http://([^:]+):(\d+)", url).groups()
        svc = services.get(host) or {}
        listen = env_of(svc).get("SIM_LISTEN", "")
        check(f"compose.sim.yml: {host} answers on :{port} of the payment-processor network",
              "payment-processor" in network_names(svc) and listen.endswith(f":{port}"), f"SIM_LISTEN={listen}")
    check_env_read("compose.sim.yml", services, dockerfile_bins, crate_of_bin)


def main():
    binaries = cargo_binaries()
    crate_of_bin = {b: pkg for pkg, bins in binaries.items() for b in bins}
    ignore = ROOT / ".dockerignore"
    check(".dockerignore keeps target/ out of the build context", ignore.exists() and dockerignored("target"))
    dockerfile_bins = {}
    for name in ("Dockerfile.lb", "Dockerfile.api", "Dockerfile.sim"):
        binary = check_dockerfile(name, binaries)
        if binary:
            dockerfile_bins[name] = binary
    check_compose(dockerfile_bins, crate_of_bin)
    check_compose_sim(dockerfile_bins, crate_of_bin)
    passed, failed = results.count(True), results.count(False)
    print(f"deploy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
