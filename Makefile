# The README's two commands. Each sets up .venv (idempotent) and then runs.
#   make train      - the main job: train the reference CNN on Fashion-MNIST, print its test accuracy
#   make test       - the test suite (what CI runs), saying why any test is skipped
#   make test-fast  - the tests that are neither slow nor system (pyproject.toml says which), for the edit loop
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip install --quiet --disable-pip-version-check
FASHION := /usr/share/datasets/fashion-mnist

.PHONY: train test test-fast test-setup demo data venv

venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .

# Debian's package where apt works (as root), else the official files, verified, into the user cache.
data: venv
	@if [ ! -d $(FASHION) ] && [ -z "$$CONVNET_DATA" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist); \
	  else $(VENV)/bin/convnet download fashion-mnist; fi; \
	fi

# About 5 minutes on 2 cores (4 min 33 s of it training). Each run gets a folder of its own, named on
# the first line it prints; the README finds the newest with `ls -d runs/reference-* | tail -n 1`.
train: data
	$(VENV)/bin/convnet train --recipe fast --out runs/reference-$$(date +%Y%m%d-%H%M%S)

demo: venv
	$(VENV)/bin/convnet demo

# The download tests serve copies of Debian's Fashion-MNIST; the page test runs headless Chromium;
# the distributed tests run mpirun (Open MPI), also between two network namespaces (iproute2);
# the Korean lesson (show --lang ko) draws Hangul in fonts-nanum's NanumGothic.
TEST_PACKAGES := dataset-fashion-mnist chromium openmpi-bin iproute2 fonts-nanum
NANUM := /usr/share/fonts/truetype/nanum

test-setup:
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test]'
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    { [ ! -d $(FASHION) ] || [ ! -d $(NANUM) ] || ! command -v chromium >/dev/null || ! command -v mpirun >/dev/null || \
	      ! command -v tc >/dev/null; }; then \
	  apt-get install -y -qq $(TEST_PACKAGES) >/dev/null || \
	    (apt-get update -qq && apt-get install -y -qq $(TEST_PACKAGES) >/dev/null); fi

test: test-setup
	$(VENV)/bin/python -m pytest -n 2 -rs --doctest-modules src tests

test-fast: test-setup
	$(VENV)/bin/python -m pytest -n 2 -rs -m "not slow and not system" --doctest-modules src tests
