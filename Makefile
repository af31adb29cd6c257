# NeuroCoreX — every target creates the environment it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# The YoWASP tools (PyPI) are found in the venv by neurocorex.boards.build.

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

# --- optional Brian2 reference environment (not needed by `make test`) -------------------
# Brian2 2.9.0, the newest on PyPI here, fails to import with numpy 2 (ndarray.ptp):
# it gets its own venv with numpy 1.26.  Its cython target needs Cython, setuptools,
# a C compiler and the Python headers.
BRIAN2_VENV ?= .venv-brian2
BRIAN2_STAMP = $(BRIAN2_VENV)/.installed

.PHONY: brian2-env test-brian2 bench-brian2

brian2-env: $(BRIAN2_STAMP)

$(BRIAN2_STAMP):
	@command -v cc >/dev/null 2>&1 || { \
	  echo "installing a C compiler (Debian)"; \
	  (apt-get update -qq && apt-get install -y -qq gcc g++ >/dev/null); }
	@$(PYTHON) -c "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" || { \
	  echo "installing the Python headers (Debian)"; \
	  (apt-get update -qq && apt-get install -y -qq python3-dev >/dev/null); }
	test -x $(BRIAN2_VENV)/bin/python || $(PYTHON) -m venv $(BRIAN2_VENV)
	$(BRIAN2_VENV)/bin/python -m pip install -q --upgrade pip
	$(BRIAN2_VENV)/bin/python -m pip install -q "brian2==2.9.0" "numpy==1.26.4" "cython==3.3.1" "setuptools>=65"
	$(BRIAN2_VENV)/bin/python -c "import brian2, numpy; print('brian2', brian2.__version__, 'numpy', numpy.__version__)"
	touch $(BRIAN2_STAMP)

test-brian2: $(STAMP) $(BRIAN2_STAMP)
	$(PY) -m pytest -q -m brian2 tests/test_brian2.py

bench-brian2: $(STAMP) $(BRIAN2_STAMP)
	$(PY) benchmarks/model_vs_brian2.py
	$(PY) benchmarks/model_vs_brian2.py --check
