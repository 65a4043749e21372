# waylay — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8080
ARGS ?=

.PHONY: run test bench lint format clean ca

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install only when the project's metadata changed (the install is editable).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
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
