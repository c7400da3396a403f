# Developer entry points. `make run` brings up the embedded system (SQLite + a Celery broker that
# needs no server); `make test` runs the test suite. See docs/setup.md.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
PYTEST_ARGS ?=
# The embedded default only. Production sets real values (docs/configuration.md).
export DJANGO_SECRET_KEY ?= insecure-embedded-default-change-me
export DJANGO_DEBUG ?= true

# Stamp files: reinstall only when a lock file changed (or the venv was recreated).
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install install-dev messages makemessages migrate run test lint bench clean distclean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME_STAMP): requirements.lock | $(BIN)/python
	$(BIN)/pip install -q -r requirements.lock
	touch $@

$(DEV_STAMP): requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.lock
	touch $@

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

# Compile the translation catalogs (config/locale/<lang>/LC_MESSAGES/django.po → .mo; .mo files
# are not committed). Nothing to do while no catalog exists.
messages: $(RUNTIME_STAMP)
	@if find . -path ./$(VENV) -prune -o -path ./var -prune -o -name '*.po' -print | grep -q .; then \
		$(MANAGE) compilemessages -v0 --ignore=$(VENV) --ignore=var; \
	else \
		echo "messages: no translation catalogs (*.po) yet, nothing to compile"; \
	fi

# Regenerate the Simplified Chinese catalog from the source; translate the new msgids, then commit.
makemessages: $(RUNTIME_STAMP)
	mkdir -p config/locale
	$(MANAGE) makemessages -l zh_Hans --ignore=$(VENV) --ignore=var

migrate: $(RUNTIME_STAMP)
	$(MANAGE) migrate --noinput

# Web, worker and beat in one terminal (Procfile.dev, via honcho). Ctrl-C stops all three.
run: install messages migrate
	$(MANAGE) seed_demo --members 200 --days 365
	$(MANAGE) seed_demo_member
	$(MANAGE) setup_periodic_tasks
	@echo
	@echo "Starting web, worker and beat. Open http://127.0.0.1:8000/admin/ (Ctrl-C stops everything)."
	@$(MANAGE) ensure_admin
	@$(MANAGE) seed_demo_member
	@echo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.dev start || [ $$? -eq 130 ]  # 130: Ctrl-C

# SQLite by default; DATABASE_URL=postgres://… runs the same suite on PostgreSQL.
test: $(DEV_STAMP) messages
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

# Benchmarks recorded in docs/benchmarks.md: suites rules (rule evaluation, backtest), api (POST /purchases
# under gunicorn vs the raw-SQL earn under pgbench; PostgreSQL and wrk), batch, portal. BENCH="api batch" picks
# suites, BENCH_ARGS="--quick" makes a short smoke run (not recorded). SQLite by default; DATABASE_URL=postgres://…
# measures on PostgreSQL, in a separate loyalty_bench database created and dropped by the bench.
BENCH ?=
BENCH_ARGS ?=
bench: $(DEV_STAMP) messages
	$(BIN)/python -m tests.bench $(BENCH) $(BENCH_ARGS)

# Generated files only; the embedded database, the admin password and the venv stay.
clean:
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name '*.mo' -type f -exec rm -f {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis artifacts var/staticfiles var/broker var/test*.sqlite3*

# Everything make created: also the venv and var/ (embedded database, broker, admin password).
distclean: clean
	rm -rf $(VENV) var
