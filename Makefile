# One entry point for developer tasks. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# No model hub at run time: the tests prove the offline path.
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1

.DEFAULT_GOAL := help
.PHONY: help install browser-deps pg-deps serve test test-fast check coverage index eval bench clean

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's requirements change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build (a bare requirement pulls a multi-GB CUDA build).
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its test tools

serve: install ## install, build what is needed, and start the service on http://127.0.0.1:8000
	@# A content problem is reported but never stops the service: valid entries still serve.
	-$(OFFLINE) $(BIN)/govfaq faq check
	@# Converts the built-in model once, then (re)builds the index; unchanged FAQs reuse cached embeddings.
	$(OFFLINE) $(BIN)/govfaq index build
	$(OFFLINE) $(BIN)/govfaq serve --host 127.0.0.1 --port 8000

# The browser tests drive Debian's chromium (Playwright's own browser download does not work
# here) with Japanese fonts, and inject axe-core from the npm registry.
AXE_JS := .cache/axe/node_modules/axe-core/axe.min.js
browser-deps: ## install chromium, Japanese fonts (apt) and axe-core (npm) for the browser tests
	@if ! command -v chromium >/dev/null 2>&1 || ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; fi
	@test -f $(AXE_JS) || npm install --silent --no-audit --no-fund --prefix .cache/axe axe-core@4

# The storage tests start a real PostgreSQL server (tests/pg.py) from Debian's binaries, which live in
# /usr/lib/postgresql/<version>/bin, off PATH; the package's own cluster is not used.
pg-deps: ## install the PostgreSQL server and nginx (apt) that the storage and two-instance tests start
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi
	@if ! command -v nginx >/dev/null 2>&1 && ! test -x /usr/sbin/nginx; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; fi

test: install browser-deps pg-deps ## install and run the whole test suite (slow and browser tests included), offline
	$(OFFLINE) $(BIN)/python -m pytest

test-fast: install pg-deps ## only the fast tests (no model, no browser)
	$(OFFLINE) $(BIN)/python -m pytest -m "not slow"

check: install ## validate the FAQ content
	$(BIN)/govfaq faq check

coverage: install ## FAQs per section of the source documents
	$(BIN)/govfaq faq coverage

index: install ## build the search index into var/ (converts the built-in model on first use)
	$(OFFLINE) $(BIN)/govfaq index build

eval: install ## accuracy on the development questions (shared/eval/dev.jsonl)
	$(OFFLINE) $(BIN)/govfaq eval ../shared/eval/dev.jsonl

bench: install ## build times, query latency, memory
	$(OFFLINE) $(BIN)/govfaq bench

clean: ## remove the virtualenv and built artefacts
	rm -rf $(VENV) var build *.egg-info
