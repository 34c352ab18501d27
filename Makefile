# Quick start: `make run` serves the app, `make test` runs the whole suite. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test install install-dev bench bench-ref clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# streamlit reads STREAMLIT_SERVER_PORT (and the other STREAMLIT_* settings) from the environment
run: $(VENV)/.installed
	$(BIN)/streamlit run app.py

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# the README's images: the browser tests of the Zoo, Side-by-side and tour pages save them to docs/screenshots
screenshots: $(VENV)/.installed-dev
	VIDEOATTN_DOCS_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:xdist -m browser tests/test_browser_zoo.py

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py

# the published implementations to time against (bench/vs_reference.py), in their own environment
.venv-ref/.installed: requirements-bench.txt
	$(PYTHON) -m venv .venv-ref
	.venv-ref/bin/python -m pip install --disable-pip-version-check -q -r requirements-bench.txt
	touch $@

bench-ref: .venv-ref/.installed
	.venv-ref/bin/python bench/vs_reference.py

clean:
	rm -rf $(VENV) .venv-ref .pytest_cache test-artifacts
