# The two commands: `make demo` and `make test`. Both bootstrap from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench system clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# PostgreSQL, the TimescaleDB extension and Mosquitto for the tests and benchmarks (idempotent).
system:
	bash scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/fabhub demo

test: $(STAMP) system
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

bench: $(STAMP) system
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/gateway_paths.py
	$(BIN)/python bench/bookings.py
	$(BIN)/python bench/oee_daily.py
	$(BIN)/python bench/live.py
	$(BIN)/python bench/scale.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .fabhub .pytest_cache .ruff_cache
