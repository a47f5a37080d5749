"""Mesos's ZooKeeper URLs: ``zk://[user:pass@]host1:port1,host2:port2/path`` or ``file:///path``."""

from __future__ import annotations

import attrs

from mesostw.flags import read_value


@attrs.frozen
class ZkUrl:
    hosts: str
    path: str
    username: str | None = None
    password: str | None = None

    @property
    def auth(self) -> tuple[str, str] | None:
        """kazoo's ``("digest", "user:pass")`` pair, when the URL carries credentials."""
        if self.username is None:
            return None
        return ("digest", f"{self.username}:{self.password or ''}")

    def __str__(self) -> str:
        credentials = f"{self.username}:***@" if self.username is not None else ""
        return f"zk://{credentials}{self.hosts}{self.path}"


def parse_zk_url(text: str) -> ZkUrl:
    """Parse as Mesos does (``zookeeper/url.hpp``): everything from the first ``/`` is the path
    (default ``/``), so a path may hold ``@``; credentials are what comes before the last ``@``
    of the part before it, so a password may hold ``:`` and ``@`` (but not ``/``)."""
    text = read_value(text.strip()).strip()
    if text.startswith("file://"):
        raise ValueError("a file:// URL must hold a zk:// URL, not another file:// URL")
    if not text.startswith("zk://"):
        raise ValueError(f"expecting a zk:// URL, not {text!r}")
    rest = text[len("zk://"):]
    slash = rest.find("/")
    hosts, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    username = password = None
    if "@" in hosts:
        credentials, hosts = hosts.rsplit("@", 1)
        username, _, password = credentials.partition(":")
        if not username:
            raise ValueError("the credentials of a zk:// URL need a user name")
    if not hosts:
        raise ValueError("a zk:// URL needs at least one host:port")
    for host in hosts.split(","):
        name, sep, port = host.rpartition(":")
        if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"invalid ZooKeeper server {host!r} (expecting host:port)")
    # ZooKeeper refuses empty, "." and ".." path components; repeated and trailing slashes are dropped.
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError(f"invalid ZooKeeper path {path!r}: relative components are not allowed")
    return ZkUrl(hosts, "/" + "/".join(parts), username, password)


def is_zk(text: str | None) -> bool:
    """Whether a ``--master`` value points at ZooKeeper (directly or through a file)."""
    if not text:
        return False
    text = text.strip()
    if text.startswith("file://"):
        try:
            text = read_value(text)
        except ValueError:
            return False
    return text.startswith("zk://")
