PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DJANGO_SECRET_KEY ?= insecure-embedded-default-change-me
export DJANGO_DEBUG ?= true

.PHONY: test
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

test: $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.lock
	$(BIN)/python manage.py compilemessages -v0 --ignore=.venv
	$(BIN)/pytest
