#!/usr/bin/env bash
# Fill VENV/wheelhouse with wheels of mesostw's runtime dependencies and of its build backend, so that
# the install test (tests/integration/test_install.py) can build a wheel of the checkout and install it
# with its dependencies into a fresh virtualenv offline (pip --no-index --find-links VENV/wheelhouse).
# Run again whenever setup.py or pyproject.toml change (the Makefile does).
set -euo pipefail
venv=${1:?usage: wheelhouse.sh VENV}
cd "$(dirname "$0")/.."
house=$venv/wheelhouse
rm -rf "$house.tmp"
mkdir -p "$house.tmp"
# `pip download .` resolves install_requires (and saves nothing for the project itself).
"$venv/bin/python" -m pip download -q -d "$house.tmp" . "setuptools>=68" wheel
rm -rf "$house"
mv "$house.tmp" "$house"
touch "$house/.complete"
