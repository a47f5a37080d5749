#!/usr/bin/env bash
# Install pymesos 0.3.15 into a virtualenv. Its dependency http-parser 0.9.0 ships a C file that
# does not compile on Python 3.11, so regenerate it with Cython 0.29 in a scratch venv first.
set -euo pipefail
venv=${1:?usage: install-pymesos.sh VENV}
python=$venv/bin/python
if "$python" -c "import pymesos, http_parser.parser" 2>/dev/null; then
  exit 0
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/cython"
"$scratch/cython/bin/pip" install -q cython==0.29.37
"$python" -m pip download -q --no-deps --no-binary :all: http-parser==0.9.0 -d "$scratch"
tar -xzf "$scratch"/http-parser-0.9.0.tar.gz -C "$scratch"
(cd "$scratch/http-parser-0.9.0" && "$scratch/cython/bin/cython" http_parser/parser.pyx -o http_parser/parser.c)
"$python" -m pip install -q "$scratch/http-parser-0.9.0"
"$python" -m pip install -q pymesos==0.3.15
