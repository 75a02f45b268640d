# The README's two commands: `make run` and `make test`. Both set everything up from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: run test lint bench clean setup chromium lambda-zip worker-image

setup: $(STAMP)

# Tools the tests run as commands but the project never imports, in a venv of their own so
# their pins never meet the project's: checkov (the Terraform scan of tests/deploy, ~290 MB).
TOOLS := .venv-tools
CHECKOV_VERSION := 3.3.30
CHECKOV := $(TOOLS)/.checkov-$(CHECKOV_VERSION)

$(CHECKOV):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "checkov==$(CHECKOV_VERSION)" \
	  || echo "Could not install checkov: tests/deploy's scan will skip and say so"
	touch $@

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[train,postgres,aws,ray,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The whole platform on this machine: REST API (docs at http://127.0.0.1:8000/docs), local
# workers, SQLite and files under ./tabpilot-data (TABPILOT_DATA_DIR to change it).
run: setup
	$(BIN)/tabpilot serve

test: setup chromium $(CHECKOV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest

# The browser tests (tests/web) drive Debian's Chromium through Playwright. Install it when it
# is missing and this user may (root with apt-get); otherwise those tests skip and say how.
chromium:
	@if [ -z "$$TABPILOT_CHROMIUM" ] && [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Chromium for the browser tests (apt-get install chromium)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      || echo "Could not install Chromium: the browser tests will skip"; \
	  else \
	    echo "No Chromium at /usr/bin/chromium: the browser tests will skip (as root: apt-get install chromium)"; \
	  fi; \
	fi

lint: setup
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: setup
	$(BIN)/python bench/quality.py

# The API's Lambda zip (build/lambda/api.zip): Tabpilot and what its API needs, no training
# library, under Lambda's 250 MB. Needs Python 3.11 on x86_64 Linux, like the Lambda runtime.
lambda-zip: setup
	$(BIN)/python deploy/lambda/build.py --out build/lambda/api.zip

# The training worker's image (`tabpilot run-job`) for AWS Batch; needs Docker.
worker-image:
	docker build -f deploy/docker/worker.Dockerfile -t tabpilot-worker:latest .

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
