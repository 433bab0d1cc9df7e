# The README's two commands. Each sets up .venv (idempotent) and then runs.
#   make train  - the main job: train the reference CNN on Fashion-MNIST, print its test accuracy
#   make test   - the test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip install --quiet --disable-pip-version-check
FASHION := /usr/share/datasets/fashion-mnist

.PHONY: train test demo data venv

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

train: data
	$(VENV)/bin/convnet train --out runs/reference-$$(date +%Y%m%d-%H%M%S)

demo: venv
	$(VENV)/bin/convnet demo

# The download tests serve copies of Debian's Fashion-MNIST; the page test runs headless Chromium;
# the distributed tests run mpirun (Open MPI), also between two network namespaces (iproute2);
# the Korean lesson (show --lang ko) draws Hangul in fonts-nanum's NanumGothic.
TEST_PACKAGES := dataset-fashion-mnist chromium openmpi-bin iproute2 fonts-nanum
NANUM := /usr/share/fonts/truetype/nanum

test:
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test]'
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    { [ ! -d $(FASHION) ] || [ ! -d $(NANUM) ] || ! command -v chromium >/dev/null || ! command -v mpirun >/dev/null || \
	      ! command -v tc >/dev/null; }; then \
	  apt-get install -y -qq $(TEST_PACKAGES) >/dev/null || \
	    (apt-get update -qq && apt-get install -y -qq $(TEST_PACKAGES) >/dev/null); fi
	$(VENV)/bin/python -m pytest -n 2 --doctest-modules src tests
