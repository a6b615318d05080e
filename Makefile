# The commands of the README:
#   make demo   set up .venv if needed, then invert a few classes with the offline model
#   make test   set up .venv if needed, then run the whole test suite
#   make lab    set up .venv if needed, then open the notebooks in JupyterLab (11 is the explorer)
#   make docs   set up .venv if needed, then build the documentation site -> docs/_build/html
#   make notebooks  re-execute (full mode) the notebooks whose code or inputs changed, with provenance
# All (re)install when pyproject.toml changes; nothing else needs doing by hand.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.piikit-installed
OUT    ?= out/demo
DEMO_CLASSES ?= --class volcano --class goldfinch --class espresso --class jellyfish
PYTEST_ARGS ?=

.PHONY: demo test lab docs notebooks env readme-figure benchmark clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/piikit invert --model efficientnet_lite0 $(DEMO_CLASSES) --preset clear --device cpu --out $(OUT) --score
	@echo "images written to $(OUT)/"

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# The committed notebooks' outputs: scripts/run_notebooks.py executes (full mode, in place) those whose
# code cells or declared inputs changed since their recorded provenance; NOTEBOOKS_ARGS passes names
# (`make notebooks NOTEBOOKS_ARGS="07 12"`) or --force / --list.
NOTEBOOKS_ARGS ?=

notebooks: $(STAMP)
	$(PY) scripts/run_notebooks.py $(NOTEBOOKS_ARGS)

# The site: the README, every notebook executed (jupyter-cache: a rebuild re-executes only the
# notebooks that changed), the API reference, the benchmarks; warnings fail the build.
# Full mode (the default) runs the notebooks as written: hours on a 2-core CPU the first time.
# PIIKIT_SMOKE=1 make docs builds the same site from smoke-mode runs (minutes) into its own
# folder, with its own cache, two notebooks at a time (-j 2: in smoke mode much of a notebook's
# time is starting its kernel). SPHINXOPTS passes other options to sphinx-build.
DOCS_OUT := $(if $(filter 1,$(PIIKIT_SMOKE)),docs/_build/smoke,docs/_build)
SPHINXOPTS ?= $(if $(filter 1,$(PIIKIT_SMOKE)),-j 2,)

docs: $(STAMP)
	$(PY) -m sphinx -b html -W --keep-going $(SPHINXOPTS) -d $(DOCS_OUT)/doctrees docs $(DOCS_OUT)/html
	@echo "open $(DOCS_OUT)/html/index.html, or serve it: $(PY) -m http.server -d $(DOCS_OUT)/html"

readme-figure: $(STAMP)
	$(PY) scripts/make_readme_figure.py

benchmark: $(STAMP)
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) out .pytest_cache
