# The project's vocabulary: run, test, lint, bench. Each target installs what it needs first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test lint bench faults faults-load

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this spec takes the CPU build on the machine's disk (see pyproject).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## run: the app on its embedded defaults (SQLite, filesystem broker, real worker + beat + relay)
run: install
	MEDAI_PROFILE=local $(BIN)/python manage.py migrate --no-input
	MEDAI_PROFILE=local $(BIN)/python manage.py seed_demo --if-empty --train
	MEDAI_PROFILE=local $(BIN)/python manage.py collectstatic --no-input -v0
	@echo "MedAI on http://127.0.0.1:8000/  (Ctrl-C stops web, worker, beat and relay)"
	# medai_site/procfile_run.py: honcho, but workers get time to finish a task on Ctrl-C.
	MEDAI_PROFILE=local PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m medai_site.procfile_run -f Procfile

## test: the whole suite against PostgreSQL and Redis on 127.0.0.1 (see README), without
## the four-fault scenario at the issue's 8 visits/s (`faults-load`; the suite runs it at 2/s)
test: install
	# --durations: every run (CI too) lists its 30 slowest tests, to keep the suite well under 30 min.
	# PYTHONDONTWRITEBYTECODE emptied: the project's modules are compiled once and the many
	# processes the suite starts (workers, gunicorn, relay, CLIs) load the cached bytecode.
	PYTHONDONTWRITEBYTECODE= MEDAI_PROFILE=test PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest --durations=30

## faults: the fault-injection suite alone (also part of `test`), printing the recovery times
faults: install
	MEDAI_PROFILE=test PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -s -q tests/integration/test_faults.py

## faults-load: issue 18's scenario, four faults one after another under a steady open-loop
## load (MEDAI_FAULTS_RATE visits/s, default 8; MEDAI_FAULTS_GAP s between faults, default 20)
faults-load: install
	MEDAI_PROFILE=test PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -s -q -m faults_load tests/integration/test_faults.py

## lint: style, security lint, the layer contracts (import-linter), types (mypy), Django's checks
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo
	MEDAI_PROFILE=test $(BIN)/mypy  # scope and strictness: [tool.mypy] in pyproject.toml
	$(BIN)/bandit -q -r medai_site patients visits predictions -ll -x '*/migrations/*'
	MEDAI_PROFILE=test $(BIN)/python manage.py check
	MEDAI_PROFILE=test $(BIN)/python manage.py makemigrations --check --dry-run

## bench: speed figures (medians and ratios in one run), written to var/bench/
bench: install
	MEDAI_PROFILE=test $(BIN)/python tests/bench/bench_engine.py
	MEDAI_PROFILE=test $(BIN)/python tests/bench/bench_advice.py
	MEDAI_PROFILE=test $(BIN)/python tests/bench/bench_batch_scoring.py  # 100,000 stored visits, 1 and 2 workers
	MEDAI_PROFILE=test $(BIN)/python tests/bench/bench_advice_throughput.py  # open loop 20-80 visits/s, 1 worker
	$(BIN)/python tests/bench/bench_advice_push.py  # Chromium: save -> advice visible, push vs poll
	MEDAI_PROFILE=test $(BIN)/python tests/bench/bench_search.py
	MEDAI_PROFILE=test $(BIN)/python tests/bench/bench_fhir_import.py  # 1,000 patients, 100,000 observations
	$(BIN)/python tests/bench/bench_generator.py
	MEDAI_PROFILE=test $(BIN)/python tests/bench/bench_text.py
	MEDAI_PROFILE=test $(BIN)/python tests/bench/bench_forecast_app.py
