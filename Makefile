# BEBERT-HW: `make demo` sets up .venv and runs the main flow; `make test` sets up and runs the tests.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup icarus demo test test-slow test-hw-slow results dse clean

# Icarus Verilog, the four-state second simulator of the tests, is a Debian package, not a PyPI one.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned to the CPU build that the machines here carry (a looser pin pulls a CUDA build).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

icarus:
	@command -v iverilog >/dev/null || { command -v apt-get >/dev/null && \
		($(SUDO) apt-get install -y -qq iverilog || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iverilog)); } \
		|| { echo "Icarus Verilog is not installed; install the Debian package iverilog (apt-get install iverilog)."; exit 1; }

demo: $(STAMP)
	$(BIN)/bebert demo
	$(BIN)/bebert-hw gen --pe 64 --out runs/demo/accelerator
	$(BIN)/bebert-hw cosim --max-tokens 64 --sentences 2 --out runs/demo/cosim
	$(BIN)/bebert-hw dse --no-synth --out runs/demo/dse
	$(BIN)/python scripts/headline_estimate.py --out runs/demo/headline.md

test: $(STAMP) icarus
	$(BIN)/python -m pytest -q --durations=25

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-hw-slow: $(STAMP)
	$(BIN)/python -m pytest -q -s -m slow tests/test_hw_accelerator.py tests/test_hw_encoder_accelerator.py

results: $(STAMP)
	$(BIN)/python scripts/foundation_results.py

# The full design-space exploration with synthesis (hours cold on 2 cores; cached after).
dse: $(STAMP)
	$(BIN)/bebert-hw dse --out results/dse

clean:
	rm -rf $(VENV) runs build *.egg-info
