# Two commands matter: `make demo` (run the example DAGs against the local emulator) and
# `make test` (lint, type-check, and the test suite on Airflow 3.3 and on Airflow 2.11).
# Both create their virtual environments on first use.

PYTHON ?= python3.11
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW2_VERSION ?= 2.11.2
VENV := .venv
VENV2 := .venv-airflow2
UV := $(VENV)/bin/uv
UV_INSTALL = $(UV) pip install -q --compile-bytecode

.PHONY: test demo lint typecheck test-airflow3 test-airflow2 reliability bench ui-deps ui-check deploy-deps deploy-check clean

$(VENV)/.installed: pyproject.toml Makefile
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q "uv>=0.13,<0.14"
	$(UV_INSTALL) --python $(VENV)/bin/python -e ".[test,ui,deploy]" "apache-airflow==$(AIRFLOW_VERSION)"
	touch $@

$(VENV2)/.installed: pyproject.toml Makefile $(VENV)/.installed
	rm -rf $(VENV2)
	$(UV) venv -q --python $(PYTHON) $(VENV2)
	$(UV_INSTALL) --python $(VENV2)/bin/python -e ".[test]" "apache-airflow==$(AIRFLOW2_VERSION)"
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

test: lint typecheck test-airflow3 test-airflow2

$(VENV)/.bench-installed: $(VENV)/.installed
	$(UV_INSTALL) --python $(VENV)/bin/python -e ".[test,bench]" "apache-airflow==$(AIRFLOW_VERSION)"
	touch $@

# Benchmarks against the official cloudflare SDK and raw requests; writes docs/benchmarks.md.
bench: $(VENV)/.bench-installed
	$(VENV)/bin/python bench/run.py

# Re-run the reliability suite and write its figures into the README's "Reliability" table.
reliability: $(VENV)/.installed
	AISEARCH_RELIABILITY_FIGURES=docs/reliability.json $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/reliability
	$(VENV)/bin/python scripts/reliability_table.py docs/reliability.json README.md

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
# two triggerers, two Celery workers) on loopback; runs the scenarios and writes docs/deployment.md (and the README figures).
deploy-check: deploy-deps $(VENV)/.installed
	$(VENV)/bin/python scripts/deploy_check.py

demo: $(VENV)/.installed
	$(VENV)/bin/python scripts/demo.py

clean:
	rm -rf $(VENV) $(VENV2) .demo .pytest_cache .mypy_cache .ruff_cache .ui-check-failure.png
