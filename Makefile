# The two commands of the README: `make train` (main job) and `make test` (tests).
# Both create and reuse the virtual env in .venv; it is rebuilt when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/quickstart.yaml
ARGS ?=
PYTEST_ARGS ?=

.PHONY: venv system train test test-slow test-all bench clean

$(STAMP): pyproject.toml scripts/ensure_system_gl.sh
	bash scripts/ensure_system_gl.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: pip takes the local CPU wheel here instead of a multi-GB CUDA build.
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

train: $(STAMP)
	$(BIN)/recore-dist train --config $(CONFIG) $(ARGS)

# Fast default selection; `make test-slow` runs the rest; CI (.ci/run) runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/recore-dist bench envs

clean:
	rm -rf $(VENV) runs .pytest_cache
