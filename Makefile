# The two commands of the README. Each sets up .venv (idempotent) and then runs.
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip install --quiet --disable-pip-version-check

.PHONY: demo test

demo:
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	$(VENV)/bin/convnet demo

test:
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test]'
	$(VENV)/bin/python -m pytest -n 2 --doctest-modules src tests
