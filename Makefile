# clipscope: `make book` builds the whole book (default profile); `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
# 1: the browser test fails (not skips) without Chromium or without the smoke build; `make test REQUIRE_BROWSER=0`
# on a machine without Chromium
REQUIRE_BROWSER ?= 1
STAMP := $(VENV)/.clipscope-installed

.PHONY: setup book smoke rehearsal test unit nbval benchmark clean

setup: $(STAMP)

# A venv with the pinned stack, the package editable and the `clipscope` kernel for papermill.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name clipscope --display-name "Python (clipscope)" >/dev/null
	touch $@

book: setup
	$(PY) -m clipscope_utils.book build --profile $(PROFILE)

smoke: setup
	$(PY) -m clipscope_utils.book build --profile smoke

# The browser test runs in `nbval`, on the HTML the smoke build just made (here it would load any old build).
unit: setup
	$(PY) -m pytest -q tests --ignore=tests/test_browser.py

# Notebook regression: re-run the smoke-executed notebooks and compare the checked outputs; then every page of
# the smoke book in headless Chromium (offline: nothing fetched from outside; no warning, traceback or progress
# bar shown; every image and internal link resolves).
nbval: smoke
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg book/executed/*.ipynb
	CLIPSCOPE_REQUIRE_BROWSER=$(REQUIRE_BROWSER) CLIPSCOPE_HTML=_build/html $(PY) -m pytest -q -p no:cacheprovider tests/test_browser.py

# The paper profile's real code paths on stand-ins (random weights of the real architectures in the Hugging
# Face cache, generated data in the real layouts): every chapter, every real-data branch; numbers mean nothing.
rehearsal: setup
	$(PY) -m clipscope_utils.book build --profile rehearsal

test: unit nbval rehearsal

benchmark: setup
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/embeddings.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/claim2.py

clean:
	rm -rf _build book/executed .cache/book-build
