# make bench reads ../shared/data/banking77/train.csv where it exists, else hf:PolyAI/banking77:train from the
# Hugging Face hub (a network is needed then); DATA=... chooses another copy.
# The README's two commands are `make demo` and `make test`; CI runs .ci/run, which calls `make test`.
# `make help` lists the targets.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK=1

# PyTorch is installed first, pinned, so that no dependency pulls another build. Which build pip takes depends on
# where it looks: from PyPI, torch 2.13.0 for Linux is the CUDA build (what a GPU machine wants; several GB). On a
# machine without a GPU, take the CPU build from PyTorch's index:
#     make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (Machines with the CPU wheel on local disk, as the development and CI machines have, get it without the index.)
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=

.DEFAULT_GOAL := help
.PHONY: help install demo bench test test-fast check lint format nbtest pytest readme docs notebooks clean

help:   ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | expand -t 12

install: $(VENV)/.installed   ## create .venv with PyTorch (see TORCH_INDEX above) and emailrouter with its dev tools

$(VENV)/.installed: settings.ini setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $@

demo: install   ## the main job on built-in defaults: fine-tune the offline model on the Danish demo inbox, track and register it
	$(BIN)/emailrouter train --demo

bench: install   ## the BANKING77 benchmark (about 15 min on 2 cores); DATA=file or hf:name, default below
	$(BIN)/python bench/banking77.py $(if $(DATA),--data $(DATA))

test: install check lint nbtest pytest   ## everything CI runs: sync checks, ruff, nbdev_test, pytest

check: install   ## notebooks clean, package and README exactly what the notebooks produce
	bash .ci/check-sync

lint: install   ## ruff: lint and format check of the notebooks, tests and benchmarks, undefined names in the package
	$(BIN)/ruff check nbs tests bench emailrouter mkdocs_hooks.py
	$(BIN)/ruff format --check nbs tests bench emailrouter mkdocs_hooks.py
	$(BIN)/ruff check --isolated --select F821,F822,F823 emailrouter

format: install   ## apply ruff's fixes and formatting to the notebooks, tests and benchmarks, then export
	$(BIN)/ruff check --fix nbs tests bench emailrouter mkdocs_hooks.py
	$(BIN)/ruff format nbs tests bench emailrouter mkdocs_hooks.py
	$(BIN)/nbdev_export

nbtest: install   ## run every notebook's test cells on tiny data (nbdev_test)
	EMAILROUTER_PROGRESS=false $(BIN)/nbdev_test --n_workers 2 --timing

pytest: install   ## the pytest suites in tests/ (databases, API, browser, CLI processes)
	@$(BIN)/python -m pytest -q --durations=25 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: tests/ must not be empty" >&2; exit 1; fi; exit $$rc

test-fast: install check lint   ## the edit-test loop: sync checks, ruff and the pytest suites without databases, browser or processes
	@$(BIN)/python -m pytest -q -m "not database and not browser and not slow" tests

readme: install   ## render README.md from nbs/index.ipynb (Quarto, which nbdev_readme needs, is not installable here)
	$(BIN)/jupyter nbconvert --to markdown nbs/index.ipynb --stdout --log-level=ERROR > README.md

docs: install   ## build the documentation site from the notebooks into _site/ (mkdocs + mkdocs-jupyter, strict; not published)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

notebooks: install   ## re-run every notebook in place with its slow cells, saving outputs for readers (no progress bars), then clean
	for nb in nbs/[0-9]*.ipynb nbs/index.ipynb; do EMAILROUTER_PROGRESS=false $(BIN)/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; done
	$(BIN)/nbdev_clean

clean:   ## remove the virtual environment and everything the demo and notebooks wrote
	rm -rf $(VENV) _proc _docs _docs_src* _site .cache *.egg-info demo.parquet emailrouter-runs
