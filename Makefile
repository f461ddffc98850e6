# Everything a fresh clone needs: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv with the tested versions (constraints.txt) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/feedbench demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest tests

bench: $(STAMP)
	$(BIN)/pytest benchmarks $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
