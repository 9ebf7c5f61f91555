# Two entry points that work on a fresh machine (Python 3.11 from the system, nothing else):
#   make run    set up .venv when missing, then run the default experiment
#   make test   set up .venv when missing, then run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint clean-venv

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,cuda]'
	touch $(STAMP)

# The default run shows the paper's effect next to its controls: 10 % of MNIST, where the
# reference recipe's baseline gains from sleep, with the step-matched fine-tune-only control
# and the strong recipe on the same data. ARGS="..." replaces these arguments.
ARGS ?= --fractions 0.1 --strong --out results/default

run: $(STAMP)
	$(VENV)/bin/python -m brainsleep.experiment $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
