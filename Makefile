# Proving Ground: `make run` runs the platform on its embedded default (SQLite + files under
# var/); `make test` runs every check and test on PostgreSQL.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
# Tests run on the local PostgreSQL unless DATABASE_URL says otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/proving_ground
# The second, fast pass: the database tests again on SQLite.
SQLITE_TEST_DATABASE_URL ?= sqlite:///$(CURDIR)/var/test.sqlite3
PYTEST_WORKERS ?= 2

.PHONY: run test install install-dev install-sim assets browser interop-venvs migrate seed lint check test-postgres test-sqlite clean

$(VENV)/.runtime: requirements.txt sdk/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

# Simulation (docs/simulation.md): Gymnasium environments as robots. gym-pusht without its
# dependencies: it asks for opencv-python, which would clobber opencv-python-headless's cv2.
$(VENV)/.sim: requirements-sim.txt requirements-sim-nodeps.txt $(VENV)/.runtime
	$(PIP) install --quiet -r requirements-sim.txt
	$(PIP) install --quiet --no-deps -r requirements-sim-nodeps.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev
install-sim: $(VENV)/.sim

# Front-end assets from the npm registry, and Rerun's web viewer copied out of the pinned
# rerun-sdk wheel, into var/ where Django serves static files from. No CDN at run time.
assets: install
	./scripts/vendor_assets.sh
	$(PY) scripts/install_rerun_viewer.py

# Browser tests drive Debian's Chromium through Playwright; Playwright never downloads one.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

migrate: install
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable  # the shared cache's table (migrate makes it too)

seed: migrate
	$(PY) manage.py seed_demo_evaluation

run: assets seed install-sim
	$(PY) manage.py collectstatic --noinput --verbosity 0
	HOST=$(HOST) PORT=$(PORT) ./scripts/run-dev.sh

# Style, and the layer contracts in pyproject.toml: the SDK (sdk/proving_ground) imports no
# Django and nothing of the apps; evaluation -> teleop -> core, one way; no import cycles.
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# Django's checks, migrations in sync, the deploy checklist with production-like settings,
# static files collected as production collects them (DEBUG off: hashed, compressed), and
# the OpenAPI schema built and validated.
check: install-dev assets
	mkdir -p var
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) manage.py check --fail-level WARNING
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) manage.py makemigrations --check --dry-run
	DJANGO_DEBUG=false DJANGO_SECRET_KEY=$$(head -c 48 /dev/urandom | base64) \
	  DJANGO_ALLOWED_HOSTS=pg.example.org DATABASE_URL=$(TEST_DATABASE_URL) \
	  $(PY) manage.py check --deploy --fail-level WARNING
	rm -rf var/static-check
	DJANGO_DEBUG=false DJANGO_SECRET_KEY=check DJANGO_ALLOWED_HOSTS=pg.example.org \
	  DATABASE_URL=$(TEST_DATABASE_URL) PG_STATIC_ROOT=$(CURDIR)/var/static-check \
	  $(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py spectacular --validate --fail-on-warn --file var/openapi.yaml

# The third-party tools our exports are checked against, in venvs of their own under
# var/interop: robomimic 0.3.0 with torch 2.13.0 (a CPU wheel on this machine's disk). LeRobot
# (Python 3.12 and a multi-GB torch) is opt-in: scripts/make_interop_venvs.sh --lerobot, then
# PG_LEROBOT_PYTHON=<its python> make test.
INTEROP := $(CURDIR)/var/interop
$(INTEROP)/robomimic/.done: scripts/make_interop_venvs.sh
	ROOT=$(INTEROP) ./scripts/make_interop_venvs.sh --with-torch
	touch $@

interop-venvs: $(INTEROP)/robomimic/.done

test-postgres: install-dev assets browser interop-venvs
	./scripts/ensure-postgres.sh $(notdir $(TEST_DATABASE_URL))
	DATABASE_URL=$(TEST_DATABASE_URL) PG_ROBOMIMIC_PYTHON=$(INTEROP)/robomimic/bin/python \
	  $(VENV)/bin/pytest -n $(PYTEST_WORKERS) -q --durations=15 -m "not production"
	# The production shape loads both cores by design: alone, so no other test starves.
	DATABASE_URL=$(TEST_DATABASE_URL) $(VENV)/bin/pytest -q --durations=5 -m production

test-sqlite: install-dev assets
	mkdir -p var
	DATABASE_URL=$(SQLITE_TEST_DATABASE_URL) $(VENV)/bin/pytest -n $(PYTEST_WORKERS) -q -m "not postgres_only and not slow" tests

test: install-dev install-sim
	./scripts/ensure-postgres.sh $(notdir $(TEST_DATABASE_URL))
	$(MAKE) lint
	$(MAKE) check
	$(MAKE) test-postgres
	$(MAKE) test-sqlite

clean:
	rm -rf var/test.sqlite3 .pytest_cache .ruff_cache
