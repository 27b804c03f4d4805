# The two commands a newcomer needs:
#   make demo   -- run the main job end to end on the local default
#   make test   -- run the test suite
# Both install what is missing first (scripts/bootstrap.sh).

VENV ?= .venv
PYTEST_ARGS ?=
# Two pytest processes: much of the suite waits on workers, servers and the database.
TEST_PROCS ?= 2

.PHONY: demo test lint bench install

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh scripts/install-extensions.sh
	VENV=$(VENV) bash scripts/bootstrap.sh
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/jsp demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(TEST_PROCS) --dist loadscope $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check jspdb tests bench migrations workers

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/bench_foundation.py all
