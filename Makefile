# bayeskit: every target works on a fresh machine with Python 3.11 and pip.
# Re-running a target reinstalls nothing unless pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BENCH_VENV := .venv-bench
BENCH_BIN  := $(BENCH_VENV)/bin
TORCH  := torch==2.13.0
OUT    ?= results

.PHONY: demo check-report docs test lint bench-env bench bench-targets clean help

help:
	@echo "make demo       regenerate every figure and number into $(OUT)/ (index.html)"
	@echo "make check-report  check $(OUT)/index.html: images, links, figures (+ a screenshot)"
	@echo "make docs       API reference + gallery into site/ (broken links fail the build)"
	@echo "make test       ruff + pytest"
	@echo "make bench-env  separate venv with the competitors (TFP-on-JAX, numba, ...)"
	@echo "make bench      run benchmarks/ side by side with the competitors"
	@echo "make bench-targets  the performance targets on this machine: medians, verdicts"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install $(TORCH)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/bayeskit reproduce all --out $(OUT)/

# not part of make test: checks the report make demo wrote, as a reader meets it
check-report: $(VENV)/.installed
	$(BIN)/bayeskit check-report --out $(OUT)

$(VENV)/.installed-docs: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

# the gallery is the quick report; --strict turns a broken link or anchor into an error
docs: $(VENV)/.installed-docs
	$(BIN)/bayeskit reproduce all --quick --out docs/gallery
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -q tests src/bayeskit --doctest-modules

$(BENCH_BIN)/python:
	$(PYTHON) -m venv $(BENCH_VENV)

$(BENCH_VENV)/.installed: pyproject.toml | $(BENCH_BIN)/python
	$(BENCH_BIN)/pip install --quiet $(TORCH)
	$(BENCH_BIN)/pip install --quiet -e '.[bench]'
	touch $@

bench-env: $(BENCH_VENV)/.installed

bench: bench-env
	cat /proc/loadavg
	$(BENCH_BIN)/python benchmarks/bench_cholesky.py
	$(BENCH_BIN)/python benchmarks/bench_polyagamma.py
	$(BENCH_BIN)/python benchmarks/bench_gibbs.py
	$(BENCH_BIN)/python benchmarks/bench_gpc_gibbs.py
	$(BENCH_BIN)/python benchmarks/bench_flows.py
	$(BENCH_BIN)/python benchmarks/bench_ratio.py
	$(BENCH_BIN)/python benchmarks/bench_gp.py

bench-targets: bench-env
	cat /proc/loadavg
	$(BENCH_BIN)/python benchmarks/check_targets.py --runs 3

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(OUT) site docs/gallery .pytest_cache .ruff_cache
	find src -name '*.nbi' -delete -o -name '*.nbc' -delete  # numba's compiled kernels
