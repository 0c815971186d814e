# Two entry points for a fresh machine:
#   make study   create .venv if missing, install the pinned stack, run the whole study on the bundled demo
#   make test    create .venv if missing, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2
STAMP  := $(VENV)/.installed

.PHONY: study test env lint report clean bench

env: $(STAMP)

$(STAMP): envs/requirements.lock.txt envs/constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" "setuptools>=77"
	$(BIN)/python -m pip install -q -c envs/constraints.txt -r envs/requirements.lock.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

study: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/snakemake --lint

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf results .snakemake
