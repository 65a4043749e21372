# waylay — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8080
ARGS ?=

.PHONY: run test bench lint format clean ca

# pip's -qq keeps the install quiet (errors still show): no progress, no setuptools box
# about editable installs. The first run says what it is doing, since it takes a minute.
$(BIN)/python:
	@echo "waylay: first run: creating $(VENV) and installing waylay and its dependencies (about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip

# Re-install only when the project's metadata changed (the install is editable).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -qq -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -qq -e '.[test]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/waylay --listen-host 127.0.0.1 --listen-port $(PORT) $(ARGS)

# Where waylay's CA certificate is and how to trust it (`waylay ca`, from the venv).
ca: $(VENV)/.installed
	$(BIN)/waylay ca $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -p no:cacheprovider $(ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python -m tests.bench $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check monitor widgets policies tests
	$(BIN)/ruff format --check monitor widgets policies tests
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff format monitor widgets policies tests
	$(BIN)/ruff check --fix monitor widgets policies tests

clean:
	rm -rf $(VENV) build *.egg-info
