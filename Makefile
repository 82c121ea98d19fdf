# Every target does its own set-up on a fresh machine: a virtual environment with the
# Python packages, and the pinned Azurite from package-lock.json.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup demo test bench clean

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(PY) -m demo.demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench.bench

clean:
	rm -rf $(VENV) node_modules .demo .bench
