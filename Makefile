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

# The site: the README, every notebook with its committed outputs (nothing is executed: about a
# minute), the API reference, the benchmarks; warnings fail the build. SPHINXOPTS passes other options.
SPHINXOPTS ?=

docs: $(STAMP)
	$(PY) -m sphinx -b html -W --keep-going $(SPHINXOPTS) -d docs/_build/doctrees docs docs/_build/html
	@echo "open docs/_build/html/index.html, or serve it: $(PY) -m http.server -d docs/_build/html"

readme-figure: $(STAMP)
	$(PY) scripts/make_readme_figure.py

benchmark: $(STAMP)
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) out .pytest_cache
