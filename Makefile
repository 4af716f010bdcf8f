# The README's two commands: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Written after a successful install; re-install only when pyproject.toml changes.
STAMP  := $(VENV)/.installed
DATA   := training/server_metrics.parquet

.PHONY: install data demo test lint format bench drills browser-deps clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "Python 3.10+ is required (found: $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

$(DATA): | $(STAMP)
	$(BIN)/python metrics_generator.py --servers 20 --days 30 --step 300 --seed 42 --out training/

data: $(STAMP) $(DATA)
	@echo "Training data: $(DATA) (see training/metrics_metadata.json for the incidents)."

# The stack: inference daemon on :8000 fed by the simulated fleet (control API :8001).
demo: $(STAMP)
	PYTHON=$(BIN)/python deploy/run_stack.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The browser test's Chromium (Debian packages chromium, chromium-driver), installed where
# this machine allows it (root with apt-get); elsewhere that test is skipped and says so.
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing chromium and chromium-driver for the browser test"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				chromium chromium-driver) >/dev/null 2>&1 \
				|| echo "could not install chromium: the browser test will be skipped"; \
		else echo "no chromium (and not root with apt-get): the browser test will be skipped"; fi; \
	fi

test: lint browser-deps
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench.bench_generator
	$(BIN)/python -m bench.bench_training --threads 2
	$(BIN)/python -m bench.bench_forward --threads 2
	$(BIN)/python -m bench.bench_forecast --threads 2
	$(BIN)/python -m bench.bench_daemon
	$(BIN)/python -m bench.bench_memory

# The production drills at full size (about 17 minutes): kill -9 of the daemon 20 times
# mid-feed, kill -9 of the MongoDB adapter 20 times mid-backlog, then an hour of 1,000
# servers at 5-second ticks, accelerated 6x.
drills: $(STAMP)
	$(BIN)/python -m bench.drill_kill --reps 20
	$(BIN)/python -m bench.drill_adapter_kill --kills 20
	$(BIN)/python -m bench.soak --servers 1000 --minutes 60 --speed 6

clean:
	rm -rf $(VENV) build *.egg-info
