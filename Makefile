# Two commands: `make demo` (set up and render the demo client report) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test bench screenshots clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is needed: set PYTHON=/path/to/python3.11")'
	@scripts/install-debian-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ltv demo --output reports/demo

# PNGs of the newest demo report (summary and each section), for a person to look at.
screenshots: $(STAMP)
	@test -e reports/demo/latest/report.html || $(BIN)/ltv demo --output reports/demo
	$(BIN)/ltv screenshots reports/demo/latest/report.html

test: $(STAMP)
	$(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_rfm.py
	$(BIN)/python benchmarks/bench_report.py

clean:
	rm -rf $(VENV) reports/demo *.egg-info
