# ctloop: the two commands a newcomer needs are `make demo` and `make test`; both set up what they need.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
IMAGES := validate train serve control watch
ENVS := $(IMAGES) dev
VENVS := .venvs
UV := .tools/bin/uv
# Locks are made for the images' platform: CPython 3.11 on x86_64 Linux.
LOCK_FLAGS := --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header
REGISTRY ?= ghcr.io/ctloop
TAG ?= $(shell $(PYTHON) -c 'import re;print(re.search(r"\"(.+)\"", open("src/ctloop/__init__.py").read()).group(1))')
CTLOOP := $(VENVS)/dev/bin/ctloop
DEMO_DIR ?= .ctloop/demo
PYTEST_ARGS ?=

export UV_PYTHON_DOWNLOADS := never
export UV_CACHE_DIR ?= $(HOME)/.cache/uv

.PHONY: help setup lock test test-fast demo bench lint images system-packages clean

help:
	@echo "make demo    run the loop on the embedded default (sets everything up)"
	@echo "make test    run every test suite in its own environment (sets everything up)"
	@echo "make setup   build the local environments from the locks, install prometheus"
	@echo "make lock    re-resolve images/*/requirements.in into hashed locks"
	@echo "make lint    ruff format check and lint"
	@echo "make bench   benchmarks, results under bench/results/"
	@echo "make images  build the container images (needs a Docker engine)"

$(UV): images/bootstrap.lock
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --require-hashes --no-deps -r $<
	touch $@

# One environment per image, from the same lock the image installs (plus the test tools in local.lock).
# The .ready stamp makes a second `make setup` with unchanged locks a no-op.
$(VENVS)/%/.ready: images/%/local.lock pyproject.toml setup.py | $(UV)
	[ -x $(VENVS)/$*/bin/python ] || $(UV) venv --quiet --python $(PYTHON) $(VENVS)/$*
	VIRTUAL_ENV=$(VENVS)/$* $(UV) pip sync --quiet --require-hashes $<
	VIRTUAL_ENV=$(VENVS)/$* $(UV) pip install --quiet --no-deps --editable .
	touch $@

setup: $(ENVS:%=$(VENVS)/%/.ready) system-packages

# Debian's packages: prometheus (the real server and promtool, for the local stack and the tests) and
# postgresql (the registry's database in the cluster; a test runs MLflow on it).
DEBIAN_PACKAGES := prometheus postgresql
system-packages:
	@missing=""; \
	command -v prometheus >/dev/null && command -v promtool >/dev/null || missing="$$missing prometheus"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "missing:$$missing; they cannot be installed here (needs root and apt-get)." >&2; \
		echo "Install them yourself: 'sudo apt-get install$$missing' on Debian/Ubuntu (or the prometheus and" >&2; \
		echo "promtool binaries from https://prometheus.io/download/ on PATH), then run make setup again." >&2; \
		exit 1; \
	fi

lock: $(UV)
	$(UV) pip compile $(LOCK_FLAGS) images/bootstrap.in -o images/bootstrap.lock
	for env in $(ENVS); do \
		$(UV) pip compile $(LOCK_FLAGS) images/$$env/requirements.in -o images/$$env/requirements.lock; \
		$(UV) pip compile $(LOCK_FLAGS) images/$$env/local.in -c images/$$env/requirements.lock -o images/$$env/local.lock; \
	done

# Each suite runs in the environment of the image it tests, together with tests/core: the shared core must
# work in every image. tests/dev holds the CLI, the local stack and cross-room tests.
test: setup
	for env in $(ENVS); do \
		echo "== tests/core tests/$$env in $(VENVS)/$$env"; \
		$(VENVS)/$$env/bin/python -m pytest tests/core tests/$$env $(PYTEST_ARGS); \
	done

# Skips tests marked slow (the end-to-end ones); CI runs everything through `make test`.
test-fast: PYTEST_ARGS += -m "not slow"
test-fast: test

SPANS := $(DEMO_DIR)/spans

demo: setup
	$(CTLOOP) config validate ctloop.yaml
	$(CTLOOP) data generate --rows 20000 --seed 7 --out $(SPANS)/2026-01 --start 2026-01-01
	$(CTLOOP) data generate --rows 20000 --seed 10 --out $(SPANS)/2026-02 --start 2026-02-01
	$(CTLOOP) data generate --rows 20000 --seed 8 --out $(SPANS)/2026-03 --start 2026-03-01 --drift covariate
	@echo "== a clean span passes validation against the previous one"
	$(CTLOOP) validate --data $(SPANS)/2026-02 --reference $(SPANS)/2026-01 --out $(DEMO_DIR)/validate/2026-02
	@echo "== the drifted span is stopped (exit 1), naming the features its manifest lists"
	rc=0; $(CTLOOP) validate --data $(SPANS)/2026-03 --reference $(SPANS)/2026-02 \
		--out $(DEMO_DIR)/validate/2026-03 >/dev/null || rc=$$?; [ $$rc = 1 ]
	@$(PYTHON) -c 'import json;print("   injected:", json.load(open("$(SPANS)/2026-03/manifest.json"))["drift"]["features"])'
	$(CTLOOP) up
	@echo "== the pipeline, locally: validate, search, train, judge per segment, register in the local MLflow"
	$(CTLOOP) pipeline run --local --data $(SPANS)/2026-02
	$(CTLOOP) status
	@echo "demo: spans under $(SPANS), reports under $(DEMO_DIR); MLflow at http://127.0.0.1:5500; 'ctloop down' stops the stack."

# Each benchmark runs in its image's environment; results land in bench/results/<name>.{json,md}.
bench: setup
	$(VENVS)/dev/bin/python bench/run.py --out bench/results
	$(VENVS)/validate/bin/python bench/validate_data.py --out bench/results
	$(VENVS)/train/bin/python bench/train.py --out bench/results
	$(VENVS)/dev/bin/python bench/pipeline.py --out bench/results

lint: $(VENVS)/dev/.ready
	$(VENVS)/dev/bin/ruff format --check .
	$(VENVS)/dev/bin/ruff check .

images:
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "make images needs a running Docker engine" >&2; exit 1; }
	for image in $(IMAGES); do \
		docker build -f images/$$image/Dockerfile --build-arg CTLOOP_GIT_SHA=$$(git rev-parse --short=12 HEAD) \
			-t $(REGISTRY)/ctloop-$$image:$(TAG) . ; \
	done

clean:
	rm -rf $(VENVS) .tools .ctloop
