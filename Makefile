# Two commands matter: `make demo` (run the example DAGs against the local emulator) and
# `make test` (lint, type-check, the test suite on Airflow 3.3 and on Airflow 2.11, and the unit suite on
# the oldest and newest supported Python and on Airflow 3.1). Both create their virtual environments on first use.

PYTHON ?= python3.11
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW2_VERSION ?= 2.11.2
# The newest Airflow 3.1: no task or asset state store (the 3.0-3.2 code paths).
AIRFLOW31_VERSION ?= 3.1.8
VENV := .venv
VENV2 := .venv-airflow2
VENV310 := .venv-py310
VENV313 := .venv-py313
VENV31 := .venv-airflow31
# Airflow before 3.3 installed as its users install it: with Airflow's constraints (the pins that matter; see the files).
AIRFLOW2_CONSTRAINTS := constraints/airflow-$(AIRFLOW2_VERSION).txt
AIRFLOW31_CONSTRAINTS := constraints/airflow-$(AIRFLOW31_VERSION).txt
# The oldest and the newest CPython that both the provider and Airflow 3.3 support and this machine has, from
# pyenv by glob (the bare pyenv shim refuses unless PYENV_VERSION selects a version); else pythonX.Y on PATH.
PYENV_ROOT := $(or $(PYENV_ROOT),$(shell pyenv root 2>/dev/null),$(HOME)/.pyenv)
newest_patch = $(or $(shell ls -d $(PYENV_ROOT)/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -V | tail -n 1),python$(1))
PYTHON_OLDEST ?= $(call newest_patch,3.10)
PYTHON_NEWEST ?= $(call newest_patch,3.13)
# The extra runs take the suite without the browser check, the deploy checks and `make demo` (minutes each;
# .venv runs them, and .venv-airflow2 the demo): the example DAGs still run in-process (dag.test) there.
UNIT_SUITE := --ignore=tests/test_ui_check.py --ignore-glob='tests/test_deploy_check*.py' \
	--deselect tests/test_example_dags.py::test_make_demo_runs_every_example_dag_with_airflow_dags_test
UV := $(VENV)/bin/uv
UV_INSTALL = $(UV) pip install -q --compile-bytecode
# twine in uv's own throwaway tool env (cached), not in the venvs: twine 7, the first to read the Metadata-Version 2.5
# that hatchling writes, needs rich>=14.3.3, which Airflow 2.11 (its fab provider: rich<14) cannot install.
# tests/test_wheel.py runs the same requirement.
TWINE_REQ := twine>=7,<8
TWINE = $(UV) tool run -q --from "$(TWINE_REQ)" twine

.PHONY: test dist demo lint typecheck test-airflow3 test-airflow2 test-py310 test-py313 test-airflow31 test-versions reliability bench ui-deps ui-check deploy-deps deploy-check clean

$(VENV)/.installed: pyproject.toml Makefile
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q "uv>=0.13,<0.14"
	$(UV_INSTALL) --python $(VENV)/bin/python -e ".[test,ui,deploy,lineage]" "apache-airflow==$(AIRFLOW_VERSION)"
	touch $@

$(VENV2)/.installed: pyproject.toml Makefile $(AIRFLOW2_CONSTRAINTS) $(VENV)/.installed
	rm -rf $(VENV2)
	$(UV) venv -q --python $(PYTHON) $(VENV2)
	$(UV_INSTALL) --python $(VENV2)/bin/python -c $(AIRFLOW2_CONSTRAINTS) -e ".[test,s3]" "apache-airflow==$(AIRFLOW2_VERSION)"
	touch $@

# Airflow 3.3 on the oldest Python (common-compat 1.20.0, the newest for 3.10) and on the newest.
$(VENV310)/.installed: pyproject.toml Makefile $(VENV)/.installed
	rm -rf $(VENV310)
	$(UV) venv -q --python $(PYTHON_OLDEST) $(VENV310)
	$(UV_INSTALL) --python $(VENV310)/bin/python -e ".[test,lineage]" "apache-airflow==$(AIRFLOW_VERSION)"
	touch $@

$(VENV313)/.installed: pyproject.toml Makefile $(VENV)/.installed
	rm -rf $(VENV313)
	$(UV) venv -q --python $(PYTHON_NEWEST) $(VENV313)
	$(UV_INSTALL) --python $(VENV313)/bin/python -e ".[test,lineage]" "apache-airflow==$(AIRFLOW_VERSION)"
	touch $@

$(VENV31)/.installed: pyproject.toml Makefile $(AIRFLOW31_CONSTRAINTS) $(VENV)/.installed
	rm -rf $(VENV31)
	$(UV) venv -q --python $(PYTHON) $(VENV31)
	$(UV_INSTALL) --python $(VENV31)/bin/python -c $(AIRFLOW31_CONSTRAINTS) -e ".[test,lineage]" \
		"apache-airflow==$(AIRFLOW31_VERSION)"
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

test-airflow3: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q

test-airflow2: $(VENV2)/.installed
	$(VENV2)/bin/python -m pytest -q

test-py310: $(VENV310)/.installed
	$(VENV310)/bin/python -m pytest -q $(UNIT_SUITE)

test-py313: $(VENV313)/.installed
	$(VENV313)/bin/python -m pytest -q $(UNIT_SUITE)

test-airflow31: $(VENV31)/.installed
	$(VENV31)/bin/python -m pytest -q $(UNIT_SUITE)

# The Airflow 2.11 suite and the three extra runs at once, after the Airflow 3.3 suite (which alone runs the deploy
# and browser checks): their tests mostly wait on the emulator (a run keeps a quarter to a half of one core busy), so
# on 2 cores together they take about as long as the slowest alone. Output per run, not mixed.
test-versions:
	$(MAKE) --no-print-directory -j4 -Otarget test-airflow2 test-py310 test-py313 test-airflow31

# `make dist` first; tests/test_wheel.py (in both suites) then builds the wheel again and smoke-tests it in a fresh venv.
test: lint typecheck dist test-airflow3 test-versions

# The wheel and the sdist in dist/ (version: __version__ in airflow_provider_aisearch/__init__.py), checked by twine.
dist: $(VENV)/.installed
	rm -rf dist
	$(UV) build -q --out-dir dist
	$(TWINE) check --strict dist/*

$(VENV)/.bench-installed: $(VENV)/.installed
	$(UV_INSTALL) --python $(VENV)/bin/python -e ".[test,bench]" "apache-airflow==$(AIRFLOW_VERSION)"
	touch $@

# Benchmarks against the official cloudflare SDK and raw requests; writes docs/benchmarks.md.
bench: $(VENV)/.bench-installed
	$(VENV)/bin/python bench/run.py

# Re-run the reliability suite and write its figures into docs/reliability.md's table.
reliability: $(VENV)/.installed
	AISEARCH_RELIABILITY_FIGURES=docs/reliability.json $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/reliability
	$(VENV)/bin/python scripts/reliability_table.py docs/reliability.json docs/reliability.md

# Debian's Chromium for the browser check (Playwright drives it; never `playwright install`).
CHROMIUM := /usr/bin/chromium
ui-deps:
	@if [ -x $(CHROMIUM) ] && [ -x /usr/bin/chromedriver ]; then echo "Chromium: $$($(CHROMIUM) --version 2>/dev/null)"; \
	else apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; fi

# Drive the real Airflow 3 UI in headless Chromium: connection form, Test, extra link; screenshots to docs/img/.
ui-check: ui-deps $(VENV)/.installed
	$(VENV)/bin/python scripts/ui_check.py

# Debian's PostgreSQL and Redis for the deploy check (`make test` runs it when they are installed;
# `.ci/run` installs them first). It runs its own instances from a temp dir on free
# ports (never the system services); Debian keeps the PostgreSQL binaries in /usr/lib/postgresql/<ver>/bin.
deploy-deps:
	@if { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
		&& command -v redis-server >/dev/null; then \
		echo "PostgreSQL: $$(ls -d /usr/lib/postgresql/*/ 2>/dev/null | xargs -n1 basename | tr '\n' ' ')Redis: $$(redis-server --version | cut -d' ' -f3)"; \
	else apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql redis-server; fi

# A real distributed Airflow 3 (PostgreSQL, CeleryExecutor + Redis, api-server, scheduler, dag-processor,
# two triggerers, two Celery workers) on loopback; runs the scenarios and writes docs/deployment.md (and the summary in docs/deploying.md).
deploy-check: deploy-deps $(VENV)/.installed
	$(VENV)/bin/python scripts/deploy_check.py

demo: $(VENV)/.installed
	$(VENV)/bin/python scripts/demo.py

clean:
	rm -rf $(VENV) $(VENV2) $(VENV310) $(VENV313) $(VENV31) dist .demo .pytest_cache .mypy_cache .ruff_cache .ui-check-failure.png
