PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test check bench calibrate clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/stockpile plan --report plan.html

test: $(VENV)/.installed
	$(BIN)/python -m pytest

check: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/ruff check stockpile tests bench
	$(BIN)/mypy stockpile --ignore-missing-imports

bench: $(VENV)/.installed
	$(BIN)/python bench/inference_speed.py

calibrate: $(VENV)/.installed
	$(BIN)/stockpile calibrate

clean:
	rm -rf $(VENV) build *.egg-info
