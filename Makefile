# Everything runs from a local .venv built with Python 3.12 (Dify runs plugins on 3.12).
PYTHON ?= python3.12
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: test demo check generate lint format clean bench bench-patches load package

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.12 (pyenv reads .python-version)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

## test: validate provider_configs/, lint, run the whole suite offline (cassettes replay); the one test that
##       needs the package index (marker package_index) is skipped with its reason when pip cannot reach it
test: check
	$(PY) -m pytest

## demo: the plugin over stdio (as Dify runs it) against the embedded gateway emulator
demo: $(STAMP)
	$(PY) -m tests.demo

## check: provider_configs/ valid, generated Dify YAML current, code linted and formatted
check: $(STAMP)
	$(PY) -m adapters.catalog.generator --check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

## bench: the plugin over stdio vs a raw keep-alive client, HTTP and TLS, ratios from the same run
bench: $(STAMP)
	$(PY) -m tests.tools.bench

## bench-patches: each patch of adapters/runtime/sdk_runtime.py against the plugin without it, realistic pacing
bench-patches: $(STAMP)
	$(PY) -m tests.tools.bench_patches

## load: 100 concurrent streaming chats plus embeddings through one plugin process, beside a 60 s flooding stream
load: $(STAMP)
	$(PY) -m tests.tools.load

## package: dist/<name>-<version>.difypkg, as `dify plugin package` would build it
package: check
	$(PY) -m tests.tools.package

## generate: rewrite provider_configs/dify/ from provider_configs/
generate: $(STAMP)
	$(PY) -m adapters.catalog.generator

lint: $(STAMP)
	$(PY) -m ruff check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist
