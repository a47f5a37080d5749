# The README's commands: `make run` starts a local cluster, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test unit bench lint clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . --config-settings editable_mode=compat
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-dev.txt tools/install-pymesos.sh tools/install-zookeeper.sh
	$(PY) -m pip install -q -r requirements-dev.txt
	tools/install-pymesos.sh $(VENV)
	tools/install-zookeeper.sh
	touch $(TEST_STAMP)

run: $(STAMP)
	$(VENV)/bin/twistd -n --pidfile= mesos-local $(ARGS)

test: $(TEST_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

unit: $(TEST_STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) bench/launch_throughput.py --tasks 200 --agents 2
	$(PY) bench/allocator.py

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check mesostw frameworks tests bench
	$(VENV)/bin/mypy mesostw

clean:
	rm -rf $(VENV) build *.egg-info
