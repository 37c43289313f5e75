# Every target sets itself up on a fresh machine and skips what has not changed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
STAMP   := $(VENV)/.installed
MODEL   := models/bot.tar.gz
TRAIN_INPUTS := config.yml domain.yml $(shell find data -name '*.yml' 2>/dev/null) $(wildcard bot/nlu/*.py)

.PHONY: help run test lint validate pytest rasa-test train deps clean

help:
	@echo "make run    start the assistant (Redis, action server, Rasa) and print the chat page"
	@echo "make test   install, train and run the whole test suite"
	@echo "make train  train the model (only when the training data changed)"
	@echo "make lint   ruff and mypy"

$(STAMP): pyproject.toml requirements.lock
	@python=$$(tools/find-python.sh) && \
	  if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then \
	    echo "setup: creating $(VENV) with $$python"; rm -rf $(VENV); "$$python" -m venv $(VENV); fi
	@echo "setup: installing pinned dependencies into $(VENV) (about a minute the first time)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.0" "setuptools==69.5.1" "wheel==0.43.0"
	@$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

deps: $(STAMP)

$(MODEL): $(STAMP) $(TRAIN_INPUTS)
	@echo "train: training the bilingual model (inputs changed)"
	@start=$$(date +%s); \
	  $(BIN)/rasa train --fixed-model-name bot --out models --quiet && \
	  echo "train: done in $$(( $$(date +%s) - start )) s"
	@touch $@

train: $(MODEL)

run: $(STAMP) $(MODEL)
	@$(PY) -m bot.launcher

lint: $(STAMP)
	$(BIN)/ruff check bot actions tests
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/rasa data validate --fail-on-warnings --quiet

pytest: $(STAMP) $(MODEL)
	$(BIN)/pytest

rasa-test: $(STAMP) $(MODEL)
	$(BIN)/rasa test core --model $(MODEL) --stories tests/stories --fail-on-prediction-errors --out results/core --quiet

test: lint validate pytest rasa-test
	@echo "make test: every stage passed"

clean:
	rm -rf models results .rasa
