# Recovery Interop. `make run` and `make test` work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
PORT ?= 8080
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck format openapi bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv needs Debian's python3-venv; installing it with apt"; \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; fi; \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Without PUBLIC_BASE_URL the server announces http://127.0.0.1:$(PORT): `make run PORT=9999`.
run: $(STAMP)
	$(BIN)/interop serve --port $(PORT)

# One pytest worker per core (pytest-xdist); `make test WORKERS=0` runs the suite in one process.
# loadgroup keeps a module marked xdist_group (a story told in order) on one worker.
WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup

check: lint typecheck
	$(BIN)/lint-imports

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

openapi: $(STAMP)
	$(BIN)/interop openapi --output openapi/openapi.json

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
