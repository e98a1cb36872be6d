# Two entry points (see README): `make run` and `make test`. Both create .venv when missing.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# profiles/default (cores: all, ...) applies automatically as Snakemake's workflow profile.
run: $(STAMP)
	$(BIN)/snakemake
	$(BIN)/snakemake report
	@echo "Report: results/report.html; summary: results/metrics/summary.md"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# snakemake --lint, snakefmt and ruff, as .ci/run runs them (settings: pyproject.toml).
lint: $(STAMP)
	$(BIN)/pip install --quiet -e '.[lint]'
	$(BIN)/ruff check src tests benchmarks workflow_scripts
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench_voxel.py
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_synth.py
	$(BIN)/python benchmarks/bench_formats.py

clean:
	rm -rf results .snakemake
