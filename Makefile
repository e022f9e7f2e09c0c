# Two commands a user needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint format release notebooks benchmark clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned, so that nothing later resolves a CUDA build on a CPU machine
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m autograder demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

release: $(STAMP)
	$(BIN)/python -m autograder release

# Re-execute the source notebooks in place (after editing a lesson), then regenerate release/.
notebooks: $(STAMP)
	$(BIN)/python -m autograder execute
	$(BIN)/python -m autograder release

# Execution time of each source notebook (the target is under 20 s on a 2-core CPU).
benchmark: $(STAMP)
	$(BIN)/python benchmarks/notebook_time.py

clean:
	rm -rf $(VENV) submitted autograded feedback gradebook.db .pytest_cache .ruff_cache
