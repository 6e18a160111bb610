# Two commands: `make demo` (set up and render the demo client report) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is needed: set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ltv demo --output reports/demo

test: $(STAMP)
	$(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_rfm.py

clean:
	rm -rf $(VENV) reports/demo *.egg-info
