# Two commands a new user needs: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Build the Kultur edition of 1 July 2019 from content/ and send it to the default transport (outbox/ folder).
demo: $(STAMP)
	$(BIN)/digest subscribers import examples/subscribers.csv
	$(BIN)/digest preview kultur --as-of 2019-07-01 --out outbox/preview/kultur-2019-07-01.html
	$(BIN)/digest send kultur --as-of 2019-07-01
	@echo "Preview: outbox/preview/kultur-2019-07-01.html (open it in a browser); messages: outbox/kultur-2019-07-01/*.eml"

# The browser tests drive Debian's chromium (Playwright never downloads a browser here); install it when missing.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "$(CHROMIUM) is missing: run 'sudo apt-get install -y chromium' (browser tests need it)"; fi

# The official MJML compiler (npm mjml), to check that MRML gives Outlook the same widths; installed into tests/.node/.
OFFICIAL_MJML := tests/.node/node_modules/.bin/mjml
MJML_VERSION  := 4.18.0

$(OFFICIAL_MJML):
	@if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; fi
	npm install --prefix tests/.node --no-audit --no-fund --no-save --loglevel=error mjml@$(MJML_VERSION)

# SpamAssassin scores the demo message (offline, `spamassassin -L -t`); Debian's package, installed when missing.
SPAMASSASSIN := /usr/bin/spamassassin

$(SPAMASSASSIN):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spamassassin; \
	else echo "$(SPAMASSASSIN) is missing: run 'sudo apt-get install -y spamassassin' (the spam-score test needs it)"; fi

test: $(STAMP) | $(CHROMIUM) $(OFFICIAL_MJML) $(SPAMASSASSIN)
	$(BIN)/ruff check digest tests bench
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/render.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/collect.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/corpus.py

clean:
	rm -rf $(VENV) outbox digest.db .pytest_cache
