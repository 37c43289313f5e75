# Every target sets itself up on a fresh machine and skips what has not changed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
STAMP   := $(VENV)/.installed
MODEL   := models/bot.tar.gz
WEB     := web/node_modules/.installed
# schemathesis lives in its own environment: its dependencies clash with Rasa's pins.
SCHEMATHESIS := .venv-schemathesis/.installed
CHROMIUM ?= /usr/bin/chromium
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FIELD_MIN ?= 0.95
TRAIN_INPUTS := config.yml domain.yml $(shell find data -name '*.yml' 2>/dev/null)

.PHONY: help run test lint validate pytest rasa-test nlu-eval train deps clean staff staff-user bench rotate-keys augment

help:
	@echo "make run    start the assistant (Redis, action server, Rasa) and print the chat page"
	@echo "make test   install, train and run the whole test suite"
	@echo "make train  train the model (only when the training data changed)"
	@echo "make lint   ruff and mypy"
	@echo "make bench  load, baseline, NLU and memory figures; rewrites BENCHMARKS.md (~21 min)"
	@echo "make staff ARGS='list'   the staff tool (list, show REF, advance REF [--to STATUS])"
	@echo "make staff-user ARGS='add NAME --role agency'  staff console accounts (add, disable, enable, list)"
	@echo "make rotate-keys  re-seal personal data under a new DATA_ENCRYPTION_KEY"

$(STAMP): pyproject.toml requirements.lock
	@python=$$(tools/find-python.sh) && \
	  if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then \
	    echo "setup: creating $(VENV) with $$python"; rm -rf $(VENV); "$$python" -m venv $(VENV); fi
	@echo "setup: installing pinned dependencies into $(VENV) (about a minute the first time)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.0" "setuptools==70.3.0" "wheel==0.43.0"
	@$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

$(WEB): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "setup: npm not found: install Node.js (apt-get install nodejs npm)"; exit 1; }
	@echo "setup: installing the chat widget (rasa-webchat) from npm"
	@cd web && npm ci --silent
	@touch $@

# Browser tests drive Debian's Chromium; the CJK font makes Chinese readable in screenshots.
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "setup: install Chromium and a CJK font (Debian: apt-get install chromium fonts-wqy-microhei), or set CHROMIUM=/path/to/chromium"; exit 1; }
	@echo "setup: installing Chromium and a CJK font for the browser tests (apt-get)"
	@$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null

# The scale-out test puts Debian's nginx in front of two Rasa servers (deploy/nginx.conf).
/usr/sbin/nginx:
	@command -v apt-get >/dev/null || { echo "setup: install nginx (Debian: apt-get install nginx-light) for the scale-out test"; exit 1; }
	@echo "setup: installing nginx for the scale-out test (apt-get)"
	@$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null

# The dashboard tests backfill a week into Debian's Prometheus (promtool) and query it; its
# recommended node exporter is not needed.
/usr/bin/prometheus:
	@command -v apt-get >/dev/null || { echo "setup: install Prometheus (Debian: apt-get install prometheus) for the dashboard tests, or set PROMETHEUS and PROMTOOL"; exit 1; }
	@echo "setup: installing Prometheus for the dashboard tests (apt-get)"
	@$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null

$(SCHEMATHESIS):
	@python=$$(tools/find-python.sh) && rm -rf .venv-schemathesis && "$$python" -m venv .venv-schemathesis
	@echo "setup: installing schemathesis (API fuzzing from the OpenAPI document) in .venv-schemathesis"
	@.venv-schemathesis/bin/pip install --quiet --disable-pip-version-check "schemathesis==4.30.1"
	@touch $@

deps: $(STAMP) $(WEB)

$(MODEL): $(STAMP) $(TRAIN_INPUTS)
	@echo "train: training the bilingual model (inputs changed)"
	@start=$$(date +%s); \
	  $(PY) -m bot.rasa train --fixed-model-name bot --out models --quiet && \
	  echo "train: done in $$(( $$(date +%s) - start )) s"
	@touch $@

train: $(MODEL)

run: $(STAMP) $(WEB) $(MODEL)
	@$(PY) -m bot.stack.launcher

staff: $(STAMP)
	@$(PY) -m card_service $(ARGS)

# Staff console accounts: add NAME --role ROLE (password asked), disable NAME, enable NAME, list.
staff-user: $(STAMP)
	@$(PY) -m console user $(ARGS)

# After DATA_ENCRYPTION_KEY changed (the old one in DATA_ENCRYPTION_KEYS_RETIRED).
rotate-keys: $(STAMP)
	@$(PY) -m bot.crypto rotate

# Pinyin and typing-slip variants of our own training examples (tools/augment_nlu.py).
augment: $(STAMP)
	@$(PY) tools/augment_nlu.py

lint: $(STAMP)
	$(BIN)/ruff check bot actions card_service console tests tools
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/rasa data validate --fail-on-warnings --quiet

pytest: $(STAMP) $(WEB) $(MODEL) $(CHROMIUM) /usr/sbin/nginx /usr/bin/prometheus $(SCHEMATHESIS)
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest --junitxml=results/pytest.xml

# Test stories end to end (--e2e): each message's intent is checked too, not only the actions.
rasa-test: $(STAMP) $(MODEL)
	$(PY) -m bot.rasa test core --e2e --model $(MODEL) --stories tests/stories --fail-on-prediction-errors --out results --quiet
	$(PY) -m bot.rasa test nlu --model $(MODEL) --nlu tests/nlu --out results --quiet

# Held-out NLU evaluation, one report per language; fails below macro-F1 0.95 in either.
# Then the blind field set (tests/nlu/field/, never trained on, never tuned on): intent
# accuracy per language and category; fails below FIELD_MIN (0.95) in either language.
nlu-eval: $(STAMP) $(MODEL)
	$(PY) tools/nlu_eval.py --model $(MODEL) --heldout-dir tests/nlu --out results/nlu --min-f1 0.95
	$(PY) tools/nlu_field.py --model $(MODEL) --field-dir tests/nlu/field --out results/nlu --min-accuracy $(FIELD_MIN)

test: lint validate pytest rasa-test nlu-eval
	@echo "make test: every stage passed"

# Load (1/8/32/64 guardians over REST and web chat; one Rasa, and nginx in front of two),
# bare-Rasa baseline, our NLU against Rasa's default, memory and a
# sampling profile; rewrites BENCHMARKS.md and docs/bench/. Run it on an otherwise idle machine.
bench: $(STAMP) $(WEB) $(MODEL) /usr/sbin/nginx
	$(PY) -m tools.bench.run

clean:
	rm -rf models results .rasa
