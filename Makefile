# ntkbook — two commands: `make book` (build the website) and `make test` (everything CI checks).
# Both create .venv if absent and install the exact pins of requirements.txt plus ntkbook itself.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HTML   := _build/html
CACHE  := _build/.jupyter_cache
# The execution cache keys on notebook code only: a change to the package or the pins must wipe it.
SOURCES_HASH = $(shell cat requirements.txt pyproject.toml ntkbook/*.py | sha256sum | cut -c1-16)

.PHONY: help venv book test lint unit nbval html check-html lab bench clean

help:
	@echo "make book   build the website into $(HTML) (executes every chapter)"
	@echo "make test   lint, unit tests, nbval over every chapter, fresh -W build, HTML check"
	@echo "make lab    JupyterLab with jupytext: open any book/*.md as a notebook"
	@echo "make bench  run benchmarks/*.py (JSON on stdout)"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	@mkdir -p _build
	@if [ "$$(cat _build/.sources-hash 2>/dev/null)" != "$(SOURCES_HASH)" ]; then \
		echo "ntkbook or the pins changed: clearing the execution cache"; rm -rf $(CACHE); fi
	$(BIN)/jupyter-book build .
	@echo "$(SOURCES_HASH)" > _build/.sources-hash
	@echo "The book is at file://$(CURDIR)/$(HTML)/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/python -m pytest tests

nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=300 \
		-p no:cacheprovider book

# A fresh build (no cache) with warnings as errors, then a check of the rendered pages.
html: $(STAMP)
	rm -rf _build
	$(BIN)/jupyter-book build . -W --keep-going
	@echo "$(SOURCES_HASH)" > _build/.sources-hash

check-html: $(STAMP)
	$(BIN)/python scripts/check_html.py $(HTML)

test: lint unit nbval html check-html

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet jupyterlab==4.6.6
	$(BIN)/jupyter lab book

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build .pytest_cache .ruff_cache .hypothesis
