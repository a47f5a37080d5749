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
    Flag.duration("http_header_timeout", 10.0, "Time a connection has to send its first bytes, and an HTTP request "
                  "its headers (from its first byte); a connection that takes longer is dropped"),
    Flag.duration("http_body_timeout", 60.0, "Time an HTTP request has to send its body once its headers are in"),
    Flag.duration("connection_setup_timeout", 60.0, "Time a Perspective Broker or executor-stream connection has, "
                  "from its first bytes, to authenticate, register or subscribe; one that has done none of these "
                  "by then is dropped"),
    Flag.int("max_connections_per_peer", 1024, "Open connections one IP address may have to this daemon's port; "
             "more are closed at once (0: no cap)"),
    Flag.int("max_connections", 0, "Open connections this daemon's port takes in all (0: the open files limit, "
             "raised to its hard limit at start, less 256 kept for the daemon's own files)"),
    Flag.duration("authentication_failure_delay", 0.5, "After an authentication failure (CRAM-MD5 or HTTP Basic) "
                  "from an address, its next attempt is checked no sooner than this, doubling with each failure; "
                  "parallel attempts wait their turn"),
    Flag.duration("authentication_failure_delay_max", 30.0, "The longest wait between two checked attempts of one "
                  "address (see --authentication_failure_delay)"),
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
    for name in ("http_header_timeout", "http_body_timeout", "connection_setup_timeout",
                 "authentication_failure_delay_max"):
        if getattr(config, name, 1.0) <= 0:
            errors.append(f"--{name} must be positive")
    for name in ("max_connections_per_peer", "max_connections", "authentication_failure_delay"):
        if getattr(config, name, 0) < 0:
            errors.append(f"--{name} must not be negative")
    if config.hostname is None:
        config.hostname = config.advertise_ip or config.ip
