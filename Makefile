# Two commands do everything on a fresh machine:
#   make run    set up .venv, write the demo run if missing, start the dashboard on 127.0.0.1:$(PORT)
#   make test   set up .venv with the test tools, run the whole pytest suite (browser tests included)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
PYTEST_ARGS ?=

.PHONY: run test demo setup setup-dev bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(VENV)/.installed-bench: requirements-bench.txt $(VENV)/.installed-dev
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(PY) -m analysis.demo --root demo

run: demo
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

BENCHMARKS ?= load_run findings image_quality monitor report_size dashboard

bench: $(VENV)/.installed-bench
	for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf demo .pytest_cache test_reports experiment_reports
