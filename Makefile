# Every target does its own set-up on a fresh machine: a virtual environment with the
# Python packages, and the pinned Azurite from package-lock.json.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup demo test bench bench-till bench-peers faults fuzz exe package admin-wheel clean browser-deps screenshots

CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

setup: $(PY_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# checkov (tests/infra) in an environment of its own, so the project's keeps the packages the
# branch executable and the Functions app have (see pyproject.toml's dev extras).
$(CHECKOV_STAMP): Makefile
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(PY) -m demo.demo

# Two workers (pytest-xdist), each with its own Azurite, dev host and browser: the suite mostly
# waits on processes and disks, so two halve it even on two cores. TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 2
test: setup browser-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The till's browser tests drive Debian's chromium (Playwright cannot download its own here)
# and need a Bangla font; installed with apt only when missing (as root in CI, else with sudo).
BENGALI_FONT := /usr/share/fonts/truetype/fonts-beng-extra/Mukti.ttf
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -e $(BENGALI_FONT) ]; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-beng-extra; \
	fi

# PNGs of the till (mid-sale, payment, 80 mm receipt) and of the HTML sales report in docs/img/,
# through the same browser.
screenshots: setup browser-deps
	$(PY) -m demo.till_screenshots
	$(PY) -m demo.report_screenshot

bench: setup
	$(PY) -m bench.bench
	$(PY) -m bench.till
	$(PY) -m bench.month

# The till alone: search, scan and sale through its HTTP routes over 100,000 products and
# 1,000,000 stored events, start-up to a usable page, --version, the executable's size.
bench-till: setup
	$(PY) -m bench.till

# branchsync beside tuned PouchDB replication (pinned in package.json), over loopback and a
# shaped link; prints one table. `$(PY) -m bench.peers --help` for sizes and link settings.
bench-peers: setup
	$(PY) -m bench.peers

# The fault-injection suite at full trial counts; prints the reliability table.
faults: setup
	$(PY) -m tests.faults.run_all

# The fuzz suite at full counts: 1,000 cases a GET or DELETE route, twice what `make test` runs;
# the POST routes, the queue and the enrollment code fuzz run their full counts in both.
fuzz: setup
	FUZZ_SCALE=1 $(PY) -m pytest tests/fuzz -q

# The branch executable (one file, built in its own virtual environment).
exe: setup
	bash packaging/exe/build.sh

# The zip Azure Functions deploys: function_app/ with the shared/ package and requirements.txt.
package: setup
	$(PY) packaging/functions/build_package.py

# branchsync-admin alone, for head office: dist/branchsync_admin-*.whl, installed with
# `pipx install` on any PC with Python 3.11+ (no clone, no Node). Needs only Python and pip.
admin-wheel:
	$(PYTHON) packaging/admin/build_wheel.py

clean:
	rm -rf $(VENV) node_modules .demo .bench .bench-peers .bench-till .bench-month .bench-apply build dist
