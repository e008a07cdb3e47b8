#!/usr/bin/env python3
"""`make submission`: writes the contest's submission folder from compose.yml (or, with
--compose, compose.postgres.yml) and tags the local images with the names it references.

The contest runs `docker compose up` on the participant's folder, which holds no source:
every service must name an image it can pull. So the folder's `docker-compose.yml` is
compose.yml with each local image name (`rinha-pay-<x>:latest`, built by `make images`)
replaced by `<prefix>rinha-pay-<x>:<tag>` and no `build:`; services, limits, networks and
volumes are compose.yml's own. Next to it: `info.json` in the contest's format and a
`README.md` that says what the entry is and where its source lives.

Then, unless --files-only, `docker tag` gives the local images those names, so the folder
runs here at once (compose finds the images locally and pulls nothing); --push (`make
publish`) then pushes them, which needs a `docker login` to that registry.

Usage: submission.py [--compose FILE] [--prefix P] [--tag T] [--out DIR] [--name NAME]
                     [--social URL] [--source URL] [--files-only | --push]
The defaults below are the names `make submission` uses with no arguments.
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCAL_IMAGE = re.compile(r"^(rinha-pay-[a-z]+):latest$")
DEFAULT_PREFIX = "ghcr.io/rinha-pay/"
DEFAULT_OUT = "participantes/rinha-pay"
DEFAULT_NAME = "rinha-pay"
DEFAULT_SOURCE = "https://github.com/rinha-pay/rinha-pay"
DEFAULT_COMPOSE = "compose.yml"
POSTGRES_IMAGE = "rinha-pay-postgres:latest"
# What the README says the workers store their payments in, by storage.
STORAGE_TEXT = {
    "sqlite": ("keep them durably in one SQLite database (WAL mode, on a volume both mount)",
               "SQLite in WAL mode on a shared volume"),
    "postgresql": ("keep them durably in one PostgreSQL server",
                   "PostgreSQL 15, one server both workers share"),
}


def storage_of(compose):
    """The storage a stack file deploys: postgresql when a service runs our PostgreSQL image."""
    images = {svc.get("image") for svc in (compose.get("services") or {}).values()}
    return "postgresql" if POSTGRES_IMAGE in images else "sqlite"


def default_tag():
    """The commit's short hash: an image name that cannot silently change under the contest."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "latest"


class PlainDumper(yaml.SafeDumper):
    """Writes every value out in full: no `&id001` anchors where compose.yml shared a block."""

    def ignore_aliases(self, data):
        return True


def published_compose(compose, prefix, tag):
    """compose.yml's document with published image names; returns (document, {local: published}).
    The `x-` blocks compose.yml shares between services are dropped: the services carry them."""
    for key in [k for k in compose if k.startswith("x-")]:
        del compose[key]
    renamed = {}
    for name, svc in compose["services"].items():
        local = svc.get("image", "")
        m = LOCAL_IMAGE.match(local)
        if not m:
            raise SystemExit(f"submission: service {name} has image {local!r}; expected rinha-pay-<x>:latest "
                             f"(the names make images builds)")
        svc.pop("build", None)
        svc["image"] = renamed[local] = f"{prefix}{m.group(1)}:{tag}"
    return compose, renamed


# The keys of the contest's info.json, in its order, with the type of each value.
INFO_FIELDS = {"name": str, "social": list, "source-code-repo": str, "langs": list, "storages": list,
               "messaging": list, "load-balancers": list, "other-technologies": list}


def info(name, social, source, storage="sqlite"):
    """info.json in the contest's shape (INFO_FIELDS): `name` is the participant's name."""
    return {
        "name": name,
        "social": [social] if social else [],
        "source-code-repo": source,
        "langs": ["rust"],
        "storages": [storage],
        "messaging": [],
        "load-balancers": ["pingora"],
        "other-technologies": [],
    }


def readme(source, images, storage="sqlite"):
    keep, storage_line = STORAGE_TEXT[storage]
    listed = "\n".join(f"- `{image}`" for image in images)
    return f"""# rinha-pay

A payment intermediary in Rust. A Pingora load balancer answers `POST /payments` with
202 at once and forwards the payments in batches to two worker processes; the workers
{keep}, pay each one through the cheaper of the two payment processors, never twice,
and answer the payments summary from the same database.

- load balancer: Pingora (Rust), port 9999
- workers: Rust (tokio, hyper), two instances
- storage: {storage_line}

Source code: {source}

Images (linux/amd64, `FROM scratch`, statically linked binaries, non-root):

{listed}
"""


def write_package(root, out, prefix, tag, name=DEFAULT_NAME, social="", source=DEFAULT_SOURCE,
                  compose_file=DEFAULT_COMPOSE):
    """Writes the three files into `out` from root/compose_file; returns {local image: published}."""
    document = yaml.safe_load((root / compose_file).read_text())
    storage = storage_of(document)
    compose, renamed = published_compose(document, prefix, tag)
    out.mkdir(parents=True, exist_ok=True)
    header = (f"# Rinha de Backend 2025 submission of rinha-pay, written by `make submission` from the\n"
              f"# project's {compose_file}. Source: {source}\n")
    (out / "docker-compose.yml").write_text(header + yaml.dump(compose, Dumper=PlainDumper, sort_keys=False))
    (out / "info.json").write_text(json.dumps(info(name, social, source, storage), indent=2) + "\n")
    (out / "README.md").write_text(readme(source, sorted(renamed.values()), storage))
    return renamed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compose", default=DEFAULT_COMPOSE, help="the stack file to package (%(default)s)")
    ap.add_argument("--prefix", default=DEFAULT_PREFIX, help="registry and user, ending in / (%(default)s)")
    ap.add_argument("--tag", default=None, help="image tag (default: the commit's short hash)")
    ap.add_argument("--out", default=DEFAULT_OUT, type=Path, help="folder to write (%(default)s)")
    ap.add_argument("--name", default=DEFAULT_NAME, help="info.json's name: the participant (%(default)s)")
    ap.add_argument("--social", default="")
    ap.add_argument("--source", default=DEFAULT_SOURCE, help="public source repository (%(default)s)")
    ap.add_argument("--files-only", action="store_true", help="write the folder, tag no image")
    ap.add_argument("--push", action="store_true", help="also docker push the tagged images")
    args = ap.parse_args()
    if args.prefix and not args.prefix.endswith("/"):
        args.prefix += "/"
    tag = args.tag or default_tag()

    out = args.out if args.out.is_absolute() else ROOT / args.out
    renamed = write_package(ROOT, out, args.prefix, tag, args.name, args.social, args.source, args.compose)
    print(f"submission: wrote {out}/docker-compose.yml, info.json, README.md")

    if not args.files_only:
        for local, published in renamed.items():
            if subprocess.run(["docker", "tag", local, published]).returncode != 0:
                sys.exit(f"submission: docker tag {local} {published} failed; build the images first (make images)")
            print(f"submission: {local} tagged {published}")
    if args.push:
        for published in renamed.values():
            if subprocess.run(["docker", "push", published]).returncode != 0:
                sys.exit(f"submission: docker push {published} failed; log in to its registry first "
                         f"(docker login {published.split('/')[0]})")


if __name__ == "__main__":
    main()
