#!/usr/bin/env bash
# Install what the partition tests drive network namespaces with: iproute2 (ip netns, veth, bridge)
# and iptables (cutting an agent off its master). Idempotent; `apt-get update` only when something is missing.
set -euo pipefail
if command -v ip >/dev/null && command -v iptables >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq iproute2 iptables >/dev/null
