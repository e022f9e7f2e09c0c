# Two commands a user needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup sandbox browser postgres demo test lint format release notebooks benchmark clean student

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned, so that nothing later resolves a CUDA build on a CPU machine
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Grading runs student code in bubblewrap sandboxes (Debian package `bubblewrap`).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (grading sandbox)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else \
	    echo "Grading needs bubblewrap: sudo apt-get install bubblewrap (Fedora: sudo dnf install bubblewrap)" >&2; \
	    exit 1; \
	  fi; }

# tests/test_postgres.py starts its own PostgreSQL server (Debian package `postgresql`).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing postgresql (gradebook test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else \
	    echo "The PostgreSQL test needs its server: sudo apt-get install postgresql (Fedora: sudo dnf install postgresql-server)" >&2; \
	    exit 1; \
	  fi; }

# tests/test_browser.py drives Chromium (Debian package `chromium`) through Playwright.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (browser test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser test needs Chromium: sudo apt-get install chromium (Fedora: sudo dnf install chromium)" >&2; \
	    exit 1; \
	  fi; }

# A student's own copy of the lessons (release/ stays as generated): make student COURSE_LANG=ru
COURSE_LANG ?= en
student: $(STAMP)
	$(BIN)/python -m autograder student --language $(COURSE_LANG)
	$(BIN)/jupyter lab my-work/$(COURSE_LANG)/

demo: $(STAMP) sandbox
	$(BIN)/python -m autograder demo

test: $(STAMP) sandbox browser postgres
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

# Execution time of each source notebook (target: under 20 s on a 2-core CPU), then
# grading throughput against plain nbgrader (about 10 minutes on 2 cores).
benchmark: $(STAMP) sandbox
	$(BIN)/python benchmarks/notebook_time.py
	$(BIN)/python benchmarks/grading.py

clean:
	rm -rf $(VENV) submitted autograded feedback autograder-feedback gradebook.db .pytest_cache .ruff_cache
