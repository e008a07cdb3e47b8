#!/usr/bin/env python3
"""Proves scripts/check/deploy.py can fail: the repository's deployment files pass, and each
breach of a contest rule, written into a copy of them, fails with the check that names it.

Run: python3 -m unittest discover -s scripts -p 'test_*.py'   (part of `make check`)
deploy.py asks the built binaries which variables they read (`--help`), so these tests
need them too: `cargo build --workspace --bins` first (`make check` builds them before);
BIN_DIR (target/debug, relative to the repository) says where they are.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "release"))  # scripts/release
import submission  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check" / "deploy.py"
# The binaries deploy.py asks, in the repository (the copies have none).
BIN_DIR = ROOT / (os.environ.get("BIN_DIR") or "target/debug")
DEPLOY_FILES = ["compose.yml", "compose.postgres.yml", "compose.sim.yml", "Dockerfile.lb", "Dockerfile.api",
                "Dockerfile.sim", "Dockerfile.postgres", "Cargo.toml", "Cargo.lock"]


def workspace_members():
    text = (ROOT / "Cargo.toml").read_text()
    return re.findall(r'"([^"]+)"', re.search(r"members\s*=\s*\[([^\]]*)\]", text).group(1))


class CheckDeploy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [b for b in ("lb", "api", "sim") if not os.access(BIN_DIR / b, os.X_OK)]
        if missing:
            raise AssertionError(f"{BIN_DIR}: no {', '.join(missing)}; build first: cargo build --workspace --bins")

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="check-deploy-"))
        for name in DEPLOY_FILES:
            shutil.copy2(ROOT / name, self.dir / name)
        for member in workspace_members():  # cargo metadata needs the manifests and their targets
            shutil.copytree(ROOT / member, self.dir / member, ignore=shutil.ignore_patterns("target"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_check(self, *extra, bin_dir=BIN_DIR):
        res = subprocess.run([sys.executable, str(CHECK), str(self.dir), *extra], capture_output=True, text=True,
                             env={**os.environ, "BIN_DIR": str(bin_dir)})
        return res.returncode, res.stdout + res.stderr

    def write_submission(self):
        """The package scripts/release/submission.py writes from the copy, in self.dir/submission."""
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "release" / "submission.py"), "--files-only",
                              "--out", str(self.dir / "submission")], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        return "submission/"

    def edit(self, name, old, new):
        path = self.dir / name
        text = path.read_text()
        self.assertIn(old, text, f"{name} no longer contains {old!r}: update this test")
        path.write_text(text.replace(old, new, 1))

    def assert_fails(self, check_name, *extra, bin_dir=BIN_DIR):
        code, out = self.run_check(*extra, bin_dir=bin_dir)
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"deploy: \d+ passed, [1-9]\d* failed", "the check crashed instead of failing")
        failed = [line for line in out.splitlines() if line.startswith("FAIL")]
        self.assertTrue(any(check_name in line for line in failed), f"no FAIL line with {check_name!r}:\n{out}")

    def test_the_repository_passes(self):
        code, out = self.run_check()
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"deploy: \d+ passed, 0 failed")

    def test_memory_over_350_mb(self):
        self.edit("compose.yml", 'memory: "100MB"', 'memory: "101MB"')
        self.assert_fails("memory limits sum")

    def test_cpus_over_1_5(self):
        self.edit("compose.yml", 'cpus: "0.50", memory: "100MB"', 'cpus: "0.6", memory: "100MB"')
        self.assert_fails("CPU limits sum")

    def test_port_9999_not_published(self):
        self.edit("compose.yml", '"9999:9999"', '"9998:9999"')
        self.assert_fails("lb publishes port 9999")

    def test_privileged(self):
        self.edit("compose.yml", "    restart: always\n    depends_on", "    restart: always\n    privileged: true\n    depends_on")
        self.assert_fails("lb is not privileged")

    def test_lb_without_the_largest_cpu_weight(self):
        self.edit("compose.yml", "    cpu_shares: 8192\n", "")
        self.assert_fails("compose.yml: the lb has the largest CPU weight")

    def test_host_network_mode(self):
        self.edit("compose.yml", "    restart: always\n    depends_on", "    restart: always\n    network_mode: host\n    depends_on")
        self.assert_fails("lb has no network_mode")

    def test_replicas(self):
        self.edit("compose.yml", "  deploy:\n    resources:", "  deploy:\n    replicas: 2\n    resources:")
        self.assert_fails("has no replicas")

    def test_processor_network_not_external(self):
        self.edit("compose.yml", "external: true", "driver: bridge")
        self.assert_fails("payment-processor network is external")

    def test_env_var_no_binary_reads(self):
        self.edit("compose.yml", "      WORKER_ID: api1", "      WORKER_ID: api1\n      WORKER_NAME: api1")
        self.assert_fails("api1 sets WORKER_NAME")

    def test_env_var_another_binary_of_the_crate_reads(self):
        # floor (crate sim) reads FLOOR_THREADS; the sim binary does not.
        self.edit("compose.sim.yml", "      SIM_LISTEN: 0.0.0.0:8080\n", "      SIM_LISTEN: 0.0.0.0:8080\n      FLOOR_THREADS: 2\n")
        self.assert_fails("compose.sim.yml: payment-processor-default sets FLOOR_THREADS")

    def test_binaries_not_built(self):
        self.assert_fails("`api --help` lists the variables api reads", bin_dir=self.dir / "target" / "debug")

    def test_lb_pointing_at_a_socket_no_worker_listens_on(self):
        self.edit("compose.yml", "API_ADDRS: unix:/run/rinha/api1.sock", "API_ADDRS: unix:/run/rinha/apiX.sock")
        self.assert_fails("API_ADDRS are the workers' API_LISTEN")

    def test_root_user(self):
        self.edit("Dockerfile.api", "USER 10001:10001", "USER root")
        self.assert_fails("Dockerfile.api: non-root user")

    def test_fat_runtime_image(self):
        self.edit("Dockerfile.lb", "FROM scratch", "FROM debian:12")
        self.assert_fails("Dockerfile.lb: one stage, FROM scratch")

    def test_copy_of_a_missing_binary(self):
        self.edit("Dockerfile.sim", "COPY sim floor /", "COPY simulator floor /")
        self.assert_fails("Dockerfile.sim: COPY simulator is a binary of the workspace")

    def test_directories_not_owned_by_the_runtime_user(self):
        self.edit("Dockerfile.api", "COPY --chown=10001:10001 rootfs/ /", "COPY rootfs/ /")
        self.assert_fails("Dockerfile.api: rootfs/ is owned by the runtime user")

    def test_build_in_compose(self):
        self.edit("compose.yml", "    restart: always\n    depends_on", "    restart: always\n    build: .\n    depends_on")
        self.assert_fails("compose.yml: lb has no build:")

    def test_image_make_images_does_not_build(self):
        self.edit("compose.yml", "image: rinha-pay-lb:latest", "image: rinha-pay-balancer:latest")
        self.assert_fails("compose.yml: lb runs an image of ours")

    def test_postgres_variant_over_350_mb(self):
        self.edit("compose.postgres.yml", 'memory: "130MB"', 'memory: "131MB"')
        self.assert_fails("compose.postgres.yml: memory limits sum")

    def test_postgres_variant_pointing_at_a_server_not_in_the_file(self):
        self.edit("compose.postgres.yml", "@postgres:5432/", "@db.example:5432/")
        self.assert_fails("compose.postgres.yml: the workers share one PostgreSQL server")

    def test_postgres_variant_not_waiting_for_the_server(self):
        self.edit("compose.postgres.yml", "condition: service_healthy", "condition: service_started")
        self.assert_fails("compose.postgres.yml: api1 waits for postgres's healthcheck")

    def test_postgres_image_running_a_shell_at_build(self):
        self.edit("Dockerfile.postgres", "USER 10001:10001", 'USER 10001:10001\nRUN ["/bin/sh", "-c", "initdb"]')
        self.assert_fails("Dockerfile.postgres: nothing runs at build time")

    def test_the_written_submission_passes(self):
        folder = self.write_submission()
        code, out = self.run_check("--submission", str(self.dir / folder))
        self.assertEqual(code, 0, out)
        self.assertIn("ok   submission info.json: source-code-repo is a URL", out)

    def test_submission_image_without_registry(self):
        folder = self.write_submission()
        self.edit(folder + "docker-compose.yml", "image: ghcr.io/rinha-pay/rinha-pay-lb:", "image: rinha-pay-lb:")
        self.assert_fails("submission docker-compose.yml: lb's image names a registry and a tag",
                          "--submission", str(self.dir / folder))

    def test_submission_with_build(self):
        folder = self.write_submission()
        self.edit(folder + "docker-compose.yml", "    restart: always\n", "    restart: always\n    build: .\n")
        self.assert_fails("submission docker-compose.yml: lb has no build:", "--submission", str(self.dir / folder))

    def test_submission_drifted_from_compose(self):
        folder = self.write_submission()
        self.edit(folder + "docker-compose.yml", "memory: 100MB", "memory: 90MB")
        self.assert_fails("submission docker-compose.yml: compose.yml's services, limits, networks and volumes",
                          "--submission", str(self.dir / folder))

    def edit_info(self, folder, change):
        """Rewrites the package's info.json with `change` applied to its object."""
        path = self.dir / folder / "info.json"
        info = json.loads(path.read_text())
        change(info)
        path.write_text(json.dumps(info))

    def test_submission_info_breaking_each_field(self):
        folder = self.write_submission()
        wrong = {str: ["rust"], list: "rust"}  # a value of the other type
        for field, kind in submission.INFO_FIELDS.items():
            with self.subTest(field=field, breach="missing"):
                self.write_submission()
                self.edit_info(folder, lambda info: info.pop(field))
                self.assert_fails("submission info.json: exactly the contest's keys", "--submission", str(self.dir / folder))
            with self.subTest(field=field, breach="wrong type"):
                self.write_submission()
                self.edit_info(folder, lambda info: info.update({field: wrong[kind]}))
                self.assert_fails(f"submission info.json: {field} is a", "--submission", str(self.dir / folder))

    def test_submission_info_in_the_old_shape(self):
        folder = self.write_submission()
        self.edit_info(folder, lambda info: info.update(participantes=[info.pop("name")]))
        self.assert_fails("submission info.json: exactly the contest's keys", "--submission", str(self.dir / folder))

if __name__ == "__main__":
    unittest.main()
