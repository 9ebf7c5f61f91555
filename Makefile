# Two entry points that work on a fresh machine (Python 3.11 from the system, nothing else):
#   make run    set up .venv when missing, then run the default experiment
#   make test   set up .venv when missing, then run the whole test suite
# Another Python (3.12, 3.13: brian2 2.10.1 with brian2cuda 1.0b1, see pyproject.toml) gets
# a venv of its own beside .venv:  make test PYTHON=python3.12  ->  .venv-3.12
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(PY_VERSION),)
$(error PYTHON=$(PYTHON) does not run: give a Python 3.11, 3.12 or 3.13 interpreter)
endif
VENV ?= $(if $(filter 3.11,$(PY_VERSION)),.venv,.venv-$(PY_VERSION))
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

# The suite runs on every core (pytest-xdist): whole files per worker (--dist loadfile), so
# a module's fixtures (its build cache, its data) are made once. TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
