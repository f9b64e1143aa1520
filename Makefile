# Each target does its own set-up: a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: run test lint eval bench bench-peers clean-output

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## clean raw/ into clean/
	$(PY) -m pipeline clean raw --out clean

test: $(STAMP)  ## the whole test suite
	$(PY) -m pytest

lint: $(STAMP)  ## ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check pipeline flows tests
	$(VENV)/bin/ruff format --check pipeline flows tests
	$(VENV)/bin/mypy

eval: $(STAMP)  ## quality evaluations on ../shared/data (not part of the tests)
	$(PY) -m tests.evaluate

bench: $(STAMP)  ## benchmarks vs the peers (minutes; not part of the tests); table + bench/results/*.json
	$(VENV)/bin/pip install --quiet rensa || echo "rensa not installed: its case is skipped"
	$(PY) -m bench.run

bench-peers:  ## opt-in: datatrove + spaCy in their own venv, for the datatrove case of `make bench`
	$(PYTHON) -m venv bench/.venv-peers
	bench/.venv-peers/bin/pip install --quiet 'datatrove[io,processing]' spacy

clean-output:
	rm -rf clean/*.jsonl clean/*.json
