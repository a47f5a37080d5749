#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver (the TLS tests check that a browser's handshake, ALPN included,
# is answered; the web UI's tests drive it with Selenium through chromedriver).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
