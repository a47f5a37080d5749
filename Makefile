# The README's commands: `make run` starts a local cluster, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit bench lint clean

$(STAMP): setup.py requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e . --config-settings editable_mode=compat
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/twistd -n --pidfile= mesos-local $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) bench/launch_throughput.py --tasks 200 --agents 2
	$(PY) bench/allocator.py

lint: $(STAMP)
	$(VENV)/bin/ruff check mesostw frameworks tests bench
	$(VENV)/bin/mypy mesostw

clean:
	rm -rf $(VENV) build *.egg-info
