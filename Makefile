# Two commands do everything on a fresh machine:
#   make run    set up .venv (the package, editable), write the demo run if missing, start the dashboard
#   make test   set up .venv with the test tools, run the whole pytest suite (browser tests included)
# For the edit loop: make test-fast (no browser, no slow tests; under a minute) and make lint.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
PYTEST_ARGS ?=
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: run test test-fast lint format demo setup setup-dev bench clean

$(VENV)/.installed: pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements-dask.txt requirements-notify.txt $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

$(VENV)/.installed-bench: requirements-bench.txt $(VENV)/.installed-dev
	$(PIP) -e '.[dev,bench]'
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(PY) -m analysis.demo --root demo

# ui.serve is `streamlit run app.py` that loads the dashboard's modules while the server starts (ui/serve.py)
run: demo
	$(PY) -m ui.serve --server.address 127.0.0.1 --server.port $(PORT)

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not browser and not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

format: $(VENV)/.installed-dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

BENCHMARKS ?= load_run findings image_quality monitor report_size dashboard

bench: $(VENV)/.installed-bench
	for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(PY) -m benchmarks.$$b || exit 1; done

clean:
	rm -rf demo .pytest_cache test_reports experiment_reports build *.egg-info
