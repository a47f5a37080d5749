# The README's commands: `make run` starts a local cluster, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed
WHEELHOUSE := $(VENV)/wheelhouse/.complete
# Hypothesis settings profile (tests/__init__.py): "ci" is derandomized, so a failure reproduces anywhere.
HYPOTHESIS_PROFILE ?= ci
# What ruff and mypy check: the folders that exist (frameworks/ may not).
LINT_PATHS := $(wildcard mesostw frameworks tests bench)
TYPED_PATHS := $(wildcard mesostw frameworks)

.PHONY: run test unit bench lint ci clean mutation

# The editable install builds the native command executor in place (setup.py; tools/install-cc.sh gets gcc),
# again whenever its source changes.
NATIVE_SOURCES := $(wildcard mesostw/executor/native/*.c mesostw/executor/native/*.h)

$(STAMP): setup.py tools/install-cc.sh $(NATIVE_SOURCES)
	tools/install-cc.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . --config-settings editable_mode=compat
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-dev.txt tools/install-pymesos.sh tools/install-zookeeper.sh tools/install-chromium.sh tools/install-netns-tools.sh
	$(PY) -m pip install -q -r requirements-dev.txt
	tools/install-pymesos.sh $(VENV)
	tools/install-zookeeper.sh
	tools/install-chromium.sh
	tools/install-netns-tools.sh
	touch $(TEST_STAMP)

# Wheels of the runtime dependencies, for the install test (tests/integration/test_install.py) to work offline.
$(WHEELHOUSE): $(STAMP) setup.py pyproject.toml tools/wheelhouse.sh
	tools/wheelhouse.sh $(VENV)

run: $(STAMP)
	$(VENV)/bin/twistd -n --pidfile= mesos-local $(ARGS)

test: $(TEST_STAMP) $(WHEELHOUSE)
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(PY) -m pytest -q $(PYTEST_ARGS)

unit: $(TEST_STAMP)
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) bench/launch_throughput.py --tasks 200 --agents 2
	$(PY) bench/allocator.py

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy $(TYPED_PATHS)

# Mutation testing of the security checks (mutmut; scope and tests in pyproject.toml's [tool.mutmut]).
# Lists the surviving mutants at the end; `.venv/bin/mutmut show NAME` shows one.
mutation: $(TEST_STAMP)
	rm -rf mutants
	HYPOTHESIS_PROFILE=mutation $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

# What CI runs (.ci/run): lint, then every test.
ci:
	$(MAKE) lint
	$(MAKE) test

clean:
	rm -rf $(VENV) build *.egg-info mesostw/executor/native/lib
