# Lanyard — developer commands. Run `make` for the list.
#
# Everything runs from the repository root with the interpreter in .venv, which is created
# on first use from requirements-dev.lock: the runtime dependencies (requirements.lock, all the
# Docker image installs) plus graphsim's and the development tools (scripts/find-python picks a
# Python >= 3.12; override with `make PYTHON=/path/to/python3.12 ...`). The project itself is
# not pip-installed.

.DEFAULT_GOAL := help

VENV := .venv
VENV_STAMP := $(VENV)/.lanyard-requirements

# `make test-integration` talks to these; the Redis db number is reserved for the suite
# and flushed before each run.
INTEGRATION_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/lanyard
INTEGRATION_BROKER_URL ?= redis://127.0.0.1:6379/14
# Playwright drives the system Chromium (never `playwright install`).
CHROMIUM_PATH ?= $(or $(shell command -v chromium 2>/dev/null),$(shell command -v chromium-browser 2>/dev/null),/usr/bin/chromium)

# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k pin -x"`.
PYTEST_ARGS ?=
# One benchmark instead of all, e.g. `make bench BENCH=bench/badge_pdf.py`.
BENCH ?=

# pytest exits 5 when it collected nothing; a suite that ran no tests is a failure.
define PYTEST_STATUS
|| { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests; treating that as a failure" >&2; exit $$rc; }
endef

.PHONY: help venv run test test-integration bench lint format clean distclean

help:
	@echo "Lanyard"
	@echo "  make run               demo: graphsim + migrate + web + worker + beat on http://127.0.0.1:$${PORT:-8000}/"
	@echo "  make test              default test suite (no servers needed)"
	@echo "  make test-integration  PostgreSQL + Redis + real Celery worker + Chromium"
	@echo "  make bench             run the benchmarks in bench/ (figures: docs/BENCHMARKS.md)"
	@echo "  make lint              ruff check + ruff format --check"
	@echo "  make format            ruff check --fix + ruff format"
	@echo "  make venv              create/update .venv from requirements-dev.lock"
	@echo "  make clean             remove var/ (demo data, logs) and caches; distclean also .venv"

venv: $(VENV_STAMP)

# Re-runs when either lock changes (requirements-dev.lock includes every pin of
# requirements.lock). A .venv whose interpreter no longer runs (or is older than 3.12) is rebuilt
# from scratch.
$(VENV_STAMP): requirements.lock requirements-dev.lock
	@if ! $(VENV)/bin/python -c 'import sys; raise SystemExit(sys.version_info < (3, 12))' 2>/dev/null; then \
		py=$$(sh scripts/find-python) || exit 1; \
		echo "==> creating $(VENV) with $$py"; \
		rm -rf $(VENV); \
		"$$py" -m venv $(VENV) || exit 1; \
	fi
	@echo "==> installing requirements-dev.lock into $(VENV)"
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r requirements-dev.lock
	@touch $@

run: $(VENV_STAMP)
	bash scripts/run-demo

# The default suite always runs in demo configuration, whatever the shell exports.
test: $(VENV_STAMP)
	env -u DATABASE_URL -u CELERY_BROKER_URL -u GRAPH_RATE_LIMITER_URL -u ENTRA_TENANT_ID LANYARD_DEMO=true \
		$(VENV)/bin/pytest -m "not integration and not slow" -n auto $(PYTEST_ARGS) $(PYTEST_STATUS)

define CHECK_SERVICES
import os, socket, sys
from urllib.parse import urlsplit

import redis

problems = []
for name, url, default_port, hint in [
    ("PostgreSQL", os.environ["DATABASE_URL"], 5432,
     "start it, e.g. pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start"),
    ("Redis", os.environ["CELERY_BROKER_URL"], 6379,
     "start it, e.g. redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''"),
]:
    u = urlsplit(url)
    try:
        socket.create_connection((u.hostname, u.port or default_port), timeout=3).close()
    except OSError as e:
        problems.append(f"{name} is not answering at {u.hostname}:{u.port or default_port} ({e}); {hint}")
chromium = os.environ["CHROMIUM_PATH"]
if not os.access(chromium, os.X_OK):
    problems.append(f"no Chromium at {chromium}; install it (apt-get install chromium) or set CHROMIUM_PATH")
if problems:
    sys.exit("make test-integration needs:\n  " + "\n  ".join(problems))
redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
endef
export CHECK_SERVICES

test-integration: $(VENV_STAMP)
	@DATABASE_URL='$(INTEGRATION_DATABASE_URL)' CELERY_BROKER_URL='$(INTEGRATION_BROKER_URL)' \
		CHROMIUM_PATH='$(CHROMIUM_PATH)' $(VENV)/bin/python -c "$$CHECK_SERVICES"
	DATABASE_URL='$(INTEGRATION_DATABASE_URL)' CELERY_BROKER_URL='$(INTEGRATION_BROKER_URL)' \
		CHROMIUM_PATH='$(CHROMIUM_PATH)' LANYARD_DEMO=true \
		$(VENV)/bin/pytest -m "integration or slow" $(PYTEST_ARGS) $(PYTEST_STATUS)

# Runs every bench/*.py (names starting with "_" are helpers) from the repository root.
bench: $(VENV_STAMP)
	@set -e; ran=0; \
	for f in $(or $(BENCH),bench/*.py); do \
		[ -f "$$f" ] || continue; \
		case "$${f##*/}" in _*) continue ;; esac; \
		echo "==> $$f"; \
		PYTHONPATH="$(CURDIR)" $(VENV)/bin/python "$$f"; \
		ran=$$((ran + 1)); \
	done; \
	if [ $$ran -eq 0 ]; then echo "make bench: no benchmark scripts found in bench/" >&2; exit 1; fi

# Both checks always run, so one report shows everything.
lint: $(VENV_STAMP)
	@rc=0; \
	echo "==> ruff check ."; $(VENV)/bin/ruff check . || rc=1; \
	echo "==> ruff format --check ."; $(VENV)/bin/ruff format --check . || rc=1; \
	echo "==> lint-imports (import directions, pyproject.toml)"; $(VENV)/bin/lint-imports || rc=1; \
	exit $$rc

format: $(VENV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf var .pytest_cache .ruff_cache .mypy_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
