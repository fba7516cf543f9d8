# The two commands of the README:
#   make run    set up .venv, train default models on the shipped samples if none exist, serve on :8080
#   make test   set up .venv (with test tools) and run the test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: run test test-fast lint setup setup-dev bench ember-baseline clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt scripts/install_test_tools.sh
	$(PY) -m pip install --quiet -r requirements-dev.txt
	bash scripts/install_test_tools.sh
	touch $@

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

run: setup
	$(VENV)/bin/vigil serve --train-missing

test: setup-dev   # one pytest worker per core (pytest-xdist), each test module kept on one worker
	$(PY) -m pytest -q -n auto --dist loadfile

test-fast: setup-dev   # the fast lane: tests marked slow (servers, brokers, browsers, long fits) left out
	$(PY) -m pytest -q -m "not slow" -n auto --dist loadfile

lint: setup-dev
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy

bench: setup-dev
	$(PY) -m bench

# Only for bench.ember_baseline (ember's own code timed beside Vigil's): elastic/ember's features.py
# (AGPL-3.0, kept outside git under runs/) and LIEF 0.12.3 in a venv of their own. Fetches from GitHub.
EMBER_COMMIT ?= d97a0b523de02f3fe5ea6089d080abacab6ee931
ember-baseline:
	test -x runs/ember-ref-venv/bin/python || $(PYTHON) -m venv runs/ember-ref-venv
	runs/ember-ref-venv/bin/pip install --quiet lief==0.12.3 $$(grep -E '^(numpy|scikit-learn)==' requirements.txt)
	test -f runs/ember-src/ember/features.py || git clone --quiet https://github.com/elastic/ember runs/ember-src
	test ! -d runs/ember-src/.git || git -C runs/ember-src checkout --quiet $(EMBER_COMMIT)

clean:
	rm -rf $(VENV) runs
