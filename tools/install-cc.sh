#!/usr/bin/env bash
# Install the C compiler and C library headers that build the native command executor
# (mesostw/executor/native, built by setup.py). Idempotent; `apt-get update` only when something is missing.
set -euo pipefail
if command -v gcc >/dev/null && [ -e /usr/include/stdio.h ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gcc libc6-dev >/dev/null
