# The README's two commands: `make demo` and `make test`. Both install on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.d2backbones-installed
CONFIG ?= configs/demo/vitdet_tiny.py
OUTPUT ?= output/demo
PYTEST_ARGS ?= --durations=15

.PHONY: install demo test clean

install: $(STAMP)

# Rebuilt only when the install recipe changes, so a second `make` skips it in seconds.
$(STAMP): setup.py tools/install_detectron2.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" "numpy<2" "setuptools<81" wheel
	$(PY) tools/install_detectron2.py
	$(PY) -m pip install --quiet --no-build-isolation -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py --config-file $(CONFIG) --output $(OUTPUT)

# lint-imports checks the architecture contracts in .importlinter before the suite runs.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) output
