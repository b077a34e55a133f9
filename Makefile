# The README's two commands are `make demo` and `make test`; CI runs .ci/run, which calls `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: install demo bench test check nbtest pytest readme notebooks clean

install: $(VENV)/.installed

# torch first, pinned to the CPU build: an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: settings.ini setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: install   ## the main job on built-in defaults: fine-tune the offline model on the Danish demo corpus, track and register it
	$(BIN)/emailrouter train --demo

bench: install   ## the BANKING77 real-data benchmark (about 15 minutes on 2 cores)
	$(BIN)/python bench/banking77.py

test: install check nbtest pytest   ## everything CI runs

check: install   ## notebooks clean, package and README exactly what the notebooks produce
	bash .ci/check-sync

nbtest: install
	$(BIN)/nbdev_test --n_workers 2 --timing

pytest: install
	@$(BIN)/python -m pytest -q tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: tests/ must not be empty" >&2; exit 1; fi; exit $$rc

readme: install   ## README.md is generated from nbs/index.ipynb (Quarto, which nbdev_readme needs, is not installable here)
	$(BIN)/jupyter nbconvert --to markdown nbs/index.ipynb --stdout --log-level=ERROR > README.md

notebooks: install   ## re-run every notebook in place, saving outputs (plots) for readers, then clean
	for nb in nbs/[0-9]*.ipynb nbs/index.ipynb; do $(BIN)/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; done
	$(BIN)/nbdev_clean

clean:
	rm -rf $(VENV) _proc _docs *.egg-info demo.parquet emailrouter-runs
