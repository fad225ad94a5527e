# The two set-up commands of the README: `make synth` and `make test`.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
BG := .venv/bin/backlog-gitops

.PHONY: setup setup-test synth check validate test e2e

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

synth: setup
	$(BG) synth

check: setup
	$(BG) synth --check

validate: setup-test
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BG) validate

test: setup-test
	PATH="$(CURDIR)/.tools/bin:$$PATH" .venv/bin/pytest

e2e: setup-test
	PATH="$(CURDIR)/.tools/bin:$$PATH" .venv/bin/pytest -m e2e
