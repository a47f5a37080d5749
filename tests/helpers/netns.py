"""Hosts in network namespaces on this machine, joined by a bridge, with partitions cut by iptables.

As ENVIRONMENT.md demands, with no exceptions: a blackhole route for 10.200.0.0/16 is in place in
the root namespace before anything else (so that a stray packet fails here instead of leaving the
machine); the bridge lives in a namespace of its own, so nothing is added to the root namespace;
hosts are addressed in 10.200.0.0/16 only; connections to them are made from *inside* a
namespace (:func:`entered`: a socket belongs to the namespace it was created in); and the
namespaces, and the route if this network added it, are deleted afterwards, also on failure.

The test process itself stays in the root namespace. It reaches a host by creating sockets inside
the host's namespace: :class:`NamespacedReactor` does that for Twisted clients (a scheduler
driver), :func:`get_json` for plain HTTP.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

CLONE_NEWNET = 0x40000000
SUBNET = "10.200.0.0/16"
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(AssertionError):
    """The namespaces cannot be set up here; the message says why."""


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def require_netns() -> None:
    """Fail (loudly, with the reason) where namespaces and iptables cannot be used."""
    if os.geteuid() != 0:
        raise NetnsError("partition tests need root (network namespaces, iptables)")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise NetnsError(f"partition tests need `{tool}`: `make test` installs it (tools/install-netns-tools.sh)")


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run the body with this thread in ``namespace``'s network namespace (sockets made here stay in it)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:  # never leave the test process elsewhere
                os._exit(99)
    finally:
        os.close(target)
        os.close(home)


class NamespacedReactor:
    """A reactor whose TCP clients to 10.200.x.y connect from inside ``namespace``."""

    def __init__(self, reactor: Any, namespace: str):
        self._reactor = reactor
        self._namespace = namespace

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30, bindAddress: Any = None) -> Any:
        with entered(self._namespace):
            return self._reactor.connectTCP(host, port, factory, timeout, bindAddress)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def get_json(namespace: str, host: str, port: int, path: str, timeout: float = 5.0) -> Any:
    """GET ``path`` from ``host:port`` as seen from inside ``namespace`` (blocking: a local hop)."""
    with entered(namespace):
        sock = socket.create_connection((host, port), timeout=timeout)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    connection.sock = sock
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise AssertionError(f"GET {path} answered {response.status}: {body[:200]!r}")
        return json.loads(body)
    finally:
        connection.close()


class Network:
    """A bridge in its own namespace and hosts (namespaces) on it at 10.200.<subnet>.<n>."""

    def __init__(self, subnet: int = 7):
        self.tag = uuid.uuid4().hex[:6]
        self.subnet = subnet
        self.bridge = f"mtw{self.tag}br"
        self.hosts: dict[str, str] = {}
        self.owns_route = False
        self.created: list[str] = []

    def start(self) -> Network:
        require_netns()
        # The blackhole first: another test may hold it already, and then it stays theirs.
        result = subprocess.run(["ip", "route", "add", "blackhole", SUBNET], capture_output=True, text=True)
        if result.returncode == 0:
            self.owns_route = True
        elif "File exists" not in result.stderr:
            raise NetnsError(f"ip route add blackhole {SUBNET}: {result.stderr.strip()}")
        _ip("netns", "add", self.bridge)
        self.created.append(self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")
        return self

    def host(self, name: str, number: int) -> str:
        """Add a host namespace plugged into the bridge; returns its address."""
        namespace = f"mtw{self.tag}{name}"
        address = f"10.200.{self.subnet}.{number}"
        _ip("netns", "add", namespace)
        self.created.append(namespace)
        port = f"p{self.tag}{number}"
        # Both ends are made in the bridge's namespace and one moves to the host's: none in the root's.
        _ip("-n", self.bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("-n", self.bridge, "link", "set", port, "master", "br0")
        _ip("-n", self.bridge, "link", "set", port, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        self.hosts[name] = namespace
        return address

    def exec_prefix(self, name: str) -> list[str]:
        """What runs a command inside host ``name``."""
        return ["ip", "netns", "exec", self.hosts[name]]

    def cut(self, name: str, peer: str) -> None:
        """Drop every packet between host ``name`` and ``peer`` (an address), both ways, silently."""
        for rule in (["INPUT", "-s", peer], ["OUTPUT", "-d", peer]):
            subprocess.run([*self.exec_prefix(name), "iptables", "-A", *rule, "-j", "DROP"], check=True)

    def heal(self, name: str) -> None:
        subprocess.run([*self.exec_prefix(name), "iptables", "-F"], check=True)

    def stop(self) -> None:
        """Kill whatever still runs in the hosts, delete the namespaces and the route (if ours)."""
        for namespace in reversed(self.created):
            result = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
            for pid in result.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self.created = []
        if self.owns_route:
            subprocess.run(["ip", "route", "del", "blackhole", SUBNET], capture_output=True)
            self.owns_route = False
