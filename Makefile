SHELL  := /bin/bash

# ntkbook — two commands: `make book` (build the website) and `make test` (everything CI checks).
# Both create .venv if absent and install the exact pins of requirements.txt plus ntkbook itself.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HTML   := _build/html
CACHE  := _build/.jupyter_cache
# The execution cache keys on notebook code only: a change to the package or the pins must wipe it.
SOURCES_HASH = $(shell cat requirements.txt pyproject.toml ntkbook/*.py ntkbook/*/*.py | sha256sum | cut -c1-16)

JOBS   ?= 2

.PHONY: help venv book test lint unit wheel nbval execute html check-html browser checks lab bench clean

help:
	@echo "make book   build the website into $(HTML) (executes changed chapters, one per core)"
	@echo "make test   lint + unit tests, alongside: every chapter executed once (pass/fail per"
	@echo "            chapter), a -W build from those results, HTML check, browser check"
	@echo "            and the wheel smoke test (declared minimum versions and pins)"
	@echo "make wheel  only the wheel smoke test, in fresh venvs (needs the package index)"
	@echo "make browser PAGES=book/02_ntk   the real-browser check of built pages (default: all)"
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
	$(BIN)/python scripts/execute_chapters.py --cache $(CACHE) --jax-cache _build/.jax_cache
	$(BIN)/jupyter-book build .
	@echo "$(SOURCES_HASH)" > _build/.sources-hash
	@echo "The book is at file://$(CURDIR)/$(HTML)/index.html"

# Lint: ruff's rules, ruff's formatting, and mypy over the package (0 errors; [tool.mypy] config).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ntkbook

# Two workers (CI has two cores); a file runs whole in one worker, so its module fixtures
# (the 4-device sharding child, the browser-check site) are built once; tests/conftest.py hands
# out the costliest files first. Every test has a 60 s limit (pyproject.toml; a file may set
# its own, e.g. the sharding child's).
# Under `make test` the unit suite and the wheel smoke test run at a lower priority (NICE): the
# critical path is chapters → -W build → site checks, so the chapters get the cores first and
# the suite soaks up what they leave (kernel start-up, imports, the single-threaded build).
# nice 5 still leaves the suite about a quarter of the machine beside two chapters, so its
# slowest test (a few CPU s) stays far inside the 60 s limit. `make unit` alone is not niced.
UNIT_WORKERS ?= 2
NICE ?= nice -n 5
unit: $(STAMP)
	$(UNIT_PREFIX) $(BIN)/python -m pytest -n $(UNIT_WORKERS) --dist loadfile -m "not slow" tests

# For a chapter author: nbval over one chapter, e.g. `make nbval CHAPTERS=book/02_ntk.md`.
CHAPTERS ?= book
nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=300 \
		-p no:cacheprovider $(CHAPTERS)

# Every chapter executed once, from scratch, one per core, into the build's execution cache;
# a failing chapter is reported with its code cell and error, and stops the build.
execute: $(STAMP)
	rm -rf _build
	$(BIN)/python scripts/execute_chapters.py --cache $(CACHE)

# The -W build then takes every chapter from that cache; it must execute nothing itself.
html: execute
	$(BIN)/jupyter-book build . -W --keep-going 2>&1 | tee _build/build.log; \
		test $${PIPESTATUS[0]} -eq 0
	@echo "$(SOURCES_HASH)" > _build/.sources-hash
	@if grep -q "Executing notebook" _build/build.log; then \
		echo "html: the build executed a chapter again (its cache key did not match):"; \
		grep "Executing notebook" _build/build.log; exit 1; fi

check-html: html
	$(BIN)/python scripts/check_html.py $(HTML)

# Headless Chromium over the built site (Debian's chromium; .ci/run installs it), with
# full-page screenshots at 1280 px into _build/screenshots/ (a CI artefact, not committed).
PAGES ?=
browser: $(STAMP)
	$(BIN)/python scripts/browser_check.py $(HTML) --screenshots _build/screenshots \
		$(foreach p,$(PAGES),--page $(p))

# Both site checks run (and the screenshots are written) even when the first one fails.
checks: html
	@status=0; $(BIN)/python scripts/check_html.py $(HTML) || status=1; \
		$(MAKE) --no-print-directory browser || status=1; exit $$status

# The built wheel in fresh virtual environments with only its declared dependencies, at their
# declared minimum versions and at the pins of requirements.txt (scripts/wheel_smoke.sh; it
# needs only the package index). Mostly download and unpacking: cheap beside the chapters.
wheel:
	PYTHON=$(PYTHON) $(WHEEL_NICE) bash scripts/wheel_smoke.sh --minimum
	PYTHON=$(PYTHON) $(WHEEL_NICE) bash scripts/wheel_smoke.sh --pins

# Lint and unit tests run beside the chapters' execution (two cores: make -j2); the wheel smoke
# test takes one more job slot, so it waits for neither.
test: $(STAMP)
	$(MAKE) --no-print-directory -j$$(( $(JOBS) + 1 )) --output-sync=target \
		UNIT_PREFIX="$(NICE)" WHEEL_NICE="$(NICE)" lint unit checks wheel

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet jupyterlab==4.6.6
	$(BIN)/jupyter lab book

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build .pytest_cache .ruff_cache .hypothesis
