# fsm-onboard: `make demo` sets up and runs the demo; `make test` sets up and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv deps controlplane cluster-up cluster-down cluster-status demo demo-down test test-unit test-e2e bench lint clean

## venv: .venv with the package (editable), test and dev tools, pinned by constraints.txt
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt scripts/link-bcc.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	scripts/link-bcc.sh $(VENV)
	touch $@

## deps: Debian packages (iptables, nftables, BCC, ...) the tests and fsm-init need
deps:
	scripts/install-system-deps.sh

## controlplane: build kube-apiserver/kube-controller-manager, etcd and helm from their Go modules
## (pinned, cached in ~/.cache/fsm-onboard/bin; a cached build is skipped)
controlplane:
	dev/build.sh all

## cluster-up: etcd + kube-apiserver + kube-controller-manager on 127.0.0.1; kubeconfig in .dev/kubeconfig
cluster-up: venv controlplane
	dev/cluster up
cluster-down:
	dev/cluster down
cluster-status:
	dev/cluster status

## demo: standalone HTTPS webhook + offline injection of the demo app
demo: deps venv controlplane
	scripts/demo.sh

demo-down:
	scripts/demo.sh down

## test: every test (unit, HTTP/TLS, CLI, netns as root)
test: deps venv controlplane
	$(PY) -m pytest $(PYTEST_ARGS)

test-e2e: venv controlplane
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## bench: every benchmark; figures land in bench/results/*.json
bench: deps venv controlplane
	$(PY) -m bench.run

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	-[ -x $(PY) ] && dev/cluster down
	-[ -x $(PY) ] && scripts/demo.sh down
	rm -rf $(VENV) .dev .pytest_cache .mypy_cache .ruff_cache
