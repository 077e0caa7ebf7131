# trialwatch: `make run` starts the daemon, `make test` runs the test suite.
# Both create .venv and install the project into it first (again only when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test demo lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/trialwatch init
	$(BIN)/trialwatch watch add NCT05605665
	$(BIN)/trialwatch run

test: $(VENV)/.installed-test
	$(BIN)/ruff check service tests
	$(BIN)/ruff format --check service tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(VENV)/.installed-run
	$(BIN)/python scripts/demo.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check service tests bench scripts
	$(BIN)/ruff format --check service tests bench scripts

format: $(VENV)/.installed-test
	$(BIN)/ruff format service tests bench scripts
	$(BIN)/ruff check --fix service tests bench scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
