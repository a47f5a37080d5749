"""What every mesostw daemon (master, agent) shares: the flags of its listening endpoint and their check."""

from __future__ import annotations

import socket

from mesostw.auth import tls
from mesostw.flags import Config, Flag

COMMON_FLAGS = tls.FLAGS + (
    Flag("ip", "127.0.0.1", "IP address to listen on"),
    Flag.int("port", 5050, "Port to listen on (HTTP and Perspective Broker share it)"),
    Flag("hostname", None, "Hostname to advertise to peers and tools (default: the advertised IP, as Mesos "
         "with --hostname_lookup=false)"),
    Flag("advertise_ip", None, "IP address to advertise instead of --ip (e.g. behind NAT)"),
    Flag.int("advertise_port", None, "Port to advertise instead of --port"),
)


def check_common(config: Config, errors: list[str]) -> None:
    """Add what is wrong with the endpoint flags to ``errors``; default ``--hostname`` to the advertised IP."""
    try:
        tls.tls_from(config)
    except tls.TLSConfigError as exc:
        errors.extend(exc.problems)
    if not 0 <= config.port <= 65535:
        errors.append(f"--port={config.port} is not a port number")
    try:
        socket.inet_aton(config.ip)
    except OSError:
        errors.append(f"--ip={config.ip} is not an IPv4 address")
    if config.hostname is None:
        config.hostname = config.advertise_ip or config.ip
