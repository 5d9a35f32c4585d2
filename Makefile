# The README's two commands: `make demo` and `make test`. Both install on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.d2backbones-installed
CONFIG ?= configs/demo/vitdet_tiny.py
OUTPUT ?= output/demo
# Two pytest-xdist workers: most tests run one torch thread, so a second worker uses the
# second core (conftest.py shares the cores between the workers). Work stealing lets the
# longest test, which conftest.py puts first, run beside the rest of the suite.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?= --durations=15 -n $(PYTEST_WORKERS) --dist worksteal

.PHONY: install demo test clean

install: $(STAMP)

# Rebuilt only when the install recipe changes, so a second `make` skips it in seconds.
# constraints.txt holds the tested versions; PIP_CONSTRAINT applies it to the pip that
# tools/install_detectron2.py runs too, so detectron2's requirements are held to it.
$(STAMP): setup.py pyproject.toml constraints.txt tools/install_detectron2.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt torch torchvision numpy setuptools wheel
	PIP_CONSTRAINT=constraints.txt $(PY) tools/install_detectron2.py
	$(PY) -m pip install --quiet -c constraints.txt --no-build-isolation -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py --config-file $(CONFIG) --output $(OUTPUT)

# lint-imports checks the architecture contracts in .importlinter before the suite runs.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) output
