# Every target installs what it needs from scratch: a fresh clone needs only python3 (3.11+) and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install install-dev run migrate test test-postgres smoke lint format bench lock clean

help:
	@echo "make run        serve the API on http://$(HOST):$(PORT) (SQLite + local files)"
	@echo "make test       run the whole test suite"
	@echo "make lint       ruff format --check + ruff check"
	@echo "make format     ruff format + ruff check --fix"
	@echo "make bench      run the benchmarks in bench/"
	@echo "make lock       re-pin requirements/*.txt from pyproject.toml"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3

# A stamp per lock file, so a changed lock reinstalls and an unchanged one costs nothing.
$(VENV)/.base.stamp: requirements/base.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/base.txt
	@touch $@

$(VENV)/.dev.stamp: requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/dev.txt
	@touch $@

install: $(VENV)/.base.stamp
install-dev: $(VENV)/.dev.stamp

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: install migrate
	$(BIN)/gunicorn config.wsgi --config deploy/gunicorn.conf.py --bind $(HOST):$(PORT)

test: install-dev
	$(BIN)/python -m pytest

test-postgres: install-dev
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(BIN)/python -m pytest

# Start `make run` on a fresh data folder and run the README's curl examples against it.
smoke: install
	.ci/readme-examples

lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-dev
	$(BIN)/python bench/pipeline.py

lock: | $(BIN)/python
	$(BIN)/pip install --quiet pip-tools==7.6.2
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --annotation-style line -o requirements/base.txt pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --annotation-style line --extra dev -o requirements/dev.txt pyproject.toml

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
