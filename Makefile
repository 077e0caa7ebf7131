# trialwatch: `make run` starts the daemon, `make test` runs the test suite.
# Both create .venv and install the project into it first (again only when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test demo lint format bench browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

# the daemon serves the web app on 127.0.0.1:$(WEB_PORT) (`make run WEB_PORT=9090` to move it)
WEB_PORT ?= 8080

run: $(VENV)/.installed-run
	$(BIN)/trialwatch init
	$(BIN)/trialwatch seeds load
	TRIALWATCH_WEB_PORT=$(WEB_PORT) $(BIN)/trialwatch run

# the tests run in one worker per core (up to 4; `make test PYTEST_ARGS='-n 0'` for one process)
test: $(VENV)/.installed-test browser
	$(BIN)/ruff check service tests scripts
	$(BIN)/ruff format --check service tests scripts
	$(BIN)/python -m pytest -n auto --maxprocesses 4 $(PYTEST_ARGS)

demo: $(VENV)/.installed-run
	$(BIN)/python scripts/demo.py

# The benchmark (bench/README.md): a quick run on 2,000 studies; BENCH_ARGS=--full for 100,000.
# urlwatch and deepdiff get a venv of their own (bench/.venv-tools), never the project's; the
# trialwatch measured is installed as a user installs it (bench/.venv-trialwatch, `pip install .`
# of this checkout, again each run), not the editable development install.
bench: $(VENV)/.installed-run
	@test -x bench/.venv-tools/bin/urlwatch || { $(PYTHON) -m venv bench/.venv-tools && \
	  bench/.venv-tools/bin/pip install -q urlwatch==2.29 deepdiff==9.1.0 requests; }
	@test -x bench/.venv-trialwatch/bin/python || $(PYTHON) -m venv bench/.venv-trialwatch
	bench/.venv-trialwatch/bin/pip install -q . && \
	  bench/.venv-trialwatch/bin/pip install -q --no-deps --force-reinstall .
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check service tests bench scripts
	$(BIN)/ruff format --check service tests bench scripts

format: $(VENV)/.installed-test
	$(BIN)/ruff format service tests bench scripts
	$(BIN)/ruff check --fix service tests bench scripts

# Debian's chromium renders the HTML report, and with chromium-driver (Selenium) walks the web
# app, in their tests; without them those tests skip.
browser:
	@{ command -v chromium && command -v chromedriver ; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) ; } || \
	  echo "chromium/chromium-driver not installed (apt-get install chromium chromium-driver): the browser tests will skip"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
