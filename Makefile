# Two commands: `make demo` (set up and render the demo client report) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast bench bench-scale screenshots lab clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is needed: set PYTHON=/path/to/python3.11")'
	@scripts/install-debian-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name ltv-toolkit --display-name "LTV toolkit (Python 3.11)" >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ltv demo --output reports/demo

# PNGs of the newest demo report (summary and each section), for a person to look at.
screenshots: $(STAMP)
	@test -e reports/demo/latest/report.html || $(BIN)/ltv demo --output reports/demo
	$(BIN)/ltv screenshots reports/demo/latest/report.html
	@test -e reports/demo-zh/latest/report.html || $(BIN)/ltv demo --output reports/demo-zh --language zh
	$(BIN)/ltv screenshots reports/demo/latest/report.html --pages docs/screenshots
	$(BIN)/ltv screenshots reports/demo-zh/latest/report.html --pages docs/screenshots

test: $(STAMP)
	$(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# The unit tests without the slow parts (PostgreSQL, Spark, Chromium, notebooks and reports): minutes, not ten.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not (postgres or spark or chromium or notebooks)" -p no:cacheprovider

# JupyterLab on notebooks/ with the project's kernel and the narrative in one language
# (make lab LANGUAGE=zh for Chinese); open the URL it prints (with its token). Only a LANGUAGE
# given on the make command line counts: the environment's LANGUAGE is gettext's (en_US:en).
LAB_LANGUAGE := $(if $(filter command line,$(origin LANGUAGE)),$(LANGUAGE),en)
lab: $(STAMP)
	$(BIN)/ltv lab --language $(LAB_LANGUAGE)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_rfm.py
	$(BIN)/python benchmarks/bench_report.py

# Summaries on DuckDB and Spark local for 1M, 5M and 20M customers (about half an hour; keeps
# benchmarks/results_scale.md). Needs Java 17 for Spark.
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale.py --write

clean:
	rm -rf $(VENV) reports/demo reports/demo-zh *.egg-info
