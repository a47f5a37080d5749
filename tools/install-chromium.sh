#!/usr/bin/env bash
# Install Debian's Chromium (the TLS tests check that a browser's handshake, ALPN included, is answered).
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
