# Quick start: `make demo` runs the demo, `make test` runs the whole suite.
# Both create .venv and install what they need on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pins (the CPU build of PyTorch, linter versions); TORCH_CONSTRAINT= keeps your own torch.
TORCH_CONSTRAINT ?= .ci/constraints.txt
PIP_CONSTRAINT_ENV := $(if $(TORCH_CONSTRAINT),PIP_CONSTRAINT=$(abspath $(TORCH_CONSTRAINT)),)

.PHONY: demo test lint typecheck install system-deps bench bench-ops bench-speed bench-peers-env clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(TORCH_CONSTRAINT) | $(BIN)/python
	$(PIP_CONSTRAINT_ENV) $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/snnconv demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

# Debian's chromium, for the test that opens report.html in a real headless browser: installed
# here where it can be (root with apt-get); otherwise the test run ends with a line naming what
# it skipped and the command that enables it. The tests need no data set (see the README).
CHROMIUM ?= /usr/bin/chromium
system-deps:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the report test (apt-get install chromium)"; \
	  ( export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends chromium >/dev/null ) || \
	  echo "could not install chromium: the report's browser test will be skipped"; \
	else \
	  echo "no $(CHROMIUM) and no root apt-get: the report's browser test will be skipped"; \
	fi

test: lint typecheck system-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) --durations=15

bench: install
	$(BIN)/python benchmarks/bench_sim.py

# Counting overhead, then error vs operations of the reference nets (full test set, T = 256).
bench-ops: install
	$(BIN)/python benchmarks/operations.py

# Speed against the folded ANN and against SpikingJelly and sinabs (when `make bench-peers-env`
# made their environment), with accuracy beside every time; long: BENCH_ARGS="--images 256" etc.
bench-speed: install
	$(BIN)/python benchmarks/speed.py $(BENCH_ARGS)

# The peers' own venv (benchmarks/.peer-venv): never dependencies of snnconv.
bench-peers-env:
	PYTHON=$(PYTHON) bash benchmarks/peers/setup.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
