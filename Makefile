# The commands of the README:
#   make demo   set up .venv if needed, then invert a few classes with the offline model
#   make test   set up .venv if needed, then run the whole test suite
#   make lab    set up .venv if needed, then open the notebooks in JupyterLab (11 is the explorer)
# All (re)install when pyproject.toml changes; nothing else needs doing by hand.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.piikit-installed
OUT    ?= out/demo
DEMO_CLASSES ?= --class volcano --class goldfinch --class espresso --class jellyfish
PYTEST_ARGS ?=

.PHONY: demo test lab env readme-figure benchmark clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/piikit invert --model efficientnet_lite0 $(DEMO_CLASSES) --preset clear --device cpu --out $(OUT) --score
	@echo "images written to $(OUT)/"

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

readme-figure: $(STAMP)
	$(PY) scripts/make_readme_figure.py

benchmark: $(STAMP)
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) out .pytest_cache
