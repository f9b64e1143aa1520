# Each target does its own set-up: a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# Debian's chromium, for the report's browser tests (tests/test_report_browser.py reads it too)
export CHROMIUM ?= /usr/bin/chromium
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: run test chromium screenshots lint eval bench bench-peers clean-output

# (scrape_clean.egg-info: left by the setuptools builds before hatchling; in the working folder it would
# shadow the installed metadata, entry points included)
$(STAMP): pyproject.toml
	rm -rf scrape_clean.egg-info
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## clean raw/ into clean/
	$(PY) -m pipeline clean raw --out clean

test: $(STAMP) chromium  ## the whole test suite
	$(PY) -m pytest

# The report's browser tests drive Debian's chromium with Playwright (never `playwright install`). Installed
# here when missing and apt-get can (as root, or with password-less sudo); otherwise those tests skip and
# say why. Never fails the target.
chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make: no $(CHROMIUM) and no apt-get: the browser tests will skip"; exit 0; fi; \
	SUDO=""; \
	if [ "$$(id -u)" != 0 ]; then \
	  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make: chromium missing and not root: the browser tests will skip"; exit 0; fi; \
	fi; \
	echo "make: installing Debian's chromium for the browser tests"; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	|| { $$SUDO apt-get update -qq >/dev/null \
	     && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	|| echo "make: could not install chromium: the browser tests will skip"

screenshots: $(STAMP) chromium  ## docs/report-*.png from the report of a generated syndicated corpus
	$(PY) -m docs.screenshots

lint: $(STAMP)  ## ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check pipeline flows tests
	$(VENV)/bin/ruff format --check pipeline flows tests
	$(VENV)/bin/mypy

eval: $(STAMP)  ## quality evaluations on ../shared/data (not part of the tests)
	$(PY) -m tests.evaluate

# Real-text corpora from ../shared/data (bench/corpus.py); the previous release runs from a temporary git worktree.
bench: $(STAMP)  ## benchmarks vs the previous release and the peers (minutes; not part of the tests); table + bench/results/*.json
	$(VENV)/bin/pip install --quiet rensa || echo "rensa not installed: its case is skipped"
	$(PY) -m bench.run

bench-peers:  ## opt-in: datatrove + spaCy in their own venv, for the datatrove case of `make bench`
	$(PYTHON) -m venv bench/.venv-peers
	bench/.venv-peers/bin/pip install --quiet 'datatrove[io,processing]' spacy

clean-output:
	rm -rf clean/*.jsonl clean/*.json

# The reliability loops of tests/test_reliability.py at length: SOAK_ROUNDS kills -9 per kill loop (a first
# run and an incremental one), a quarter as many interrupts per signal (SIGINT to the process group as
# Ctrl-C sends it, SIGINT and SIGTERM to the process), a tenth as many pairs of runs started at once on one
# folder. A new seed for the random moments each time, printed first: RELIABILITY_SEED=N replays a run.
SOAK_ROUNDS ?= 200
.PHONY: soak
soak: $(STAMP)  ## kill -9, Ctrl-C, SIGTERM and two runs at once, many times over (~20 min for 200 rounds)
	@seed=$${RELIABILITY_SEED:-$$(date +%s)}; \
	echo "make soak: SOAK_ROUNDS=$(SOAK_ROUNDS) RELIABILITY_SEED=$$seed"; \
	SOAK_ROUNDS=$(SOAK_ROUNDS) RELIABILITY_SEED=$$seed \
	  $(PY) -m pytest tests/test_reliability.py -x -k "kill_loop or interrupt or at_once"
