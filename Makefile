# Two commands a user needs: `make demo` and `make test`. Both set up .venv first.
# While changing the code, `make test-fast` (under a minute) leaves out the tests marked slow:
# sandboxes, kernels, the browser, PostgreSQL, the cluster, the server and the notebooks' replay.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup sandbox browser postgres demo test test-fast lint format release notebooks benchmark clean student

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned, so that nothing later resolves a CUDA build on a CPU machine
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# A Debian package the project needs: $(call apt_need,CHECK,PACKAGE,WHAT FOR,WHAT TO DO WITHOUT ROOT).
# CHECK is a shell command that succeeds once the package is there; as root it is installed with apt.
define apt_need
@$(1) >/dev/null 2>&1 || { \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
    echo "installing $(2) ($(3))"; \
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
  else \
    echo "$(4)" >&2; \
    exit 1; \
  fi; }
endef

# Grading runs student code in bubblewrap sandboxes (Debian package `bubblewrap`).
sandbox:
	$(call apt_need,command -v bwrap,bubblewrap,grading sandbox,Grading needs bubblewrap: sudo apt-get install bubblewrap (Fedora: sudo dnf install bubblewrap))

# tests/test_postgres.py starts its own PostgreSQL server (Debian package `postgresql`).
postgres:
	$(call apt_need,ls /usr/lib/postgresql/*/bin/initdb,postgresql,gradebook test,The PostgreSQL test needs its server: sudo apt-get install postgresql (Fedora: sudo dnf install postgresql-server))

# tests/test_browser.py drives Chromium (Debian package `chromium`) through Playwright.
browser:
	$(call apt_need,command -v chromium,chromium,browser test,The browser test needs Chromium: sudo apt-get install chromium (Fedora: sudo dnf install chromium))

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

test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -m "not slow"

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
