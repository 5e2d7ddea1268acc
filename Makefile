# maskline: the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test test-fast test-slow lint typecheck translations bench bench-smoke soak soak-smoke clean

STAMP  := $(VENV)/.installed

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/maskline init
	$(BIN)/maskline serve --host $(HOST) --port $(PORT)

# Unit, integration and end-to-end tiers. Real PostgreSQL / Redis when
# MASKLINE_TEST_DATABASE_URL / MASKLINE_TEST_REDIS_URL are set, SQLite and
# fakeredis otherwise. One worker per CPU (at most TEST_WORKERS), each with a
# database and a Redis database of its own (tests/workers.py); a test file
# stays on one worker, with its module fixtures. Files are handed out in the
# order given: the slow end-to-end files first, the many small unit files
# last, so that the run does not end with one worker alone on a long file.
# Budget: 5 minutes on 2 idle CPUs, in each configuration (docs/testing.md).
TEST_WORKERS ?= 4
TEST_TIERS   ?= tests/e2e tests/integration tests/unit
test: install
	$(BIN)/pytest -m "not slow" -n auto --maxprocesses $(TEST_WORKERS) --dist loadfile --durations=15 \
		$(TEST_TIERS)

# The unit tier alone, in one process: the edit-run loop.
test-fast: install
	$(BIN)/pytest -m "not slow" -n 0 -q tests/unit

# Tiers that need extra system packages or throwaway servers.
test-slow: install
	$(BIN)/pytest -m slow tests/slow

# lint-imports: the layers of .importlinter (issue 21); a new upward import fails.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

# The console's catalogues: re-extract the marked strings, merge them into
# each language's .po (translate what is new there), compile the .mo that
# ships beside it. tests/unit/test_console_catalogue.py checks both.
I18N := maskline/admin/translations
translations: install
	$(BIN)/pybabel extract -F $(I18N)/babel.cfg -k N_ --no-location --sort-output \
		--project maskline --copyright-holder maskline -o $(I18N)/messages.pot .
	$(BIN)/pybabel update -i $(I18N)/messages.pot -d $(I18N) --no-fuzzy-matching --ignore-obsolete -w 110
	$(BIN)/pybabel compile -d $(I18N) --statistics

# Every benchmark against gunicorn with PostgreSQL and Redis, then
# docs/benchmarks.md. Figures for people, never a gate.
bench: install
	$(BIN)/python bench/report.py --out docs/benchmarks.md

# A few seconds of each benchmark, to prove they run (CI); nothing under docs/.
bench-smoke: install
	$(BIN)/python bench/report.py --smoke --out $(or $(TMPDIR),/tmp)/maskline-bench-smoke.md

# A steady mix of binds, calls, texts, unbinds and expiries (default 10 min).
SOAK_SECONDS ?= 600
soak: install
	$(BIN)/python bench/soak.py --seconds $(SOAK_SECONDS)

soak-smoke: install
	$(BIN)/python bench/soak.py --seconds 20

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
