"""Marathon's path ids (``/prod/web/frontend``): parsing, relative ids, validation.

An app or group id is a slash-separated path whose segments are lowercase DNS-like
labels. Clients send relative ids (``foo``), ids with a leading double slash
(``//foo``, from marathon-python's ``scale_app``) and ``.``/``..`` segments; all of
them become one canonical absolute form here.
"""

from __future__ import annotations

import re

ROOT = "/"

#: One segment of a path id (Marathon's ``PathId`` pattern).
SEGMENT = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$")

SEGMENT_RULE = ("must fully match regular expression "
                "'^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])$'")


class InvalidPath(ValueError):
    """A path id that cannot be made canonical or has an invalid segment."""


def canonical(raw: str, base: str = ROOT) -> str:
    """The absolute form of ``raw``: relative ids are taken under ``base``, empty segments dropped
    and ``.``/``..`` resolved. Raises :class:`InvalidPath` for a segment outside the id alphabet
    or a ``..`` above the root."""
    if not isinstance(raw, str):
        raise InvalidPath("an id is a string")
    parts: list[str] = [] if raw.startswith("/") else [p for p in base.split("/") if p]
    for segment in raw.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if not parts:
                raise InvalidPath(f"'{raw}' goes above the root")
            parts.pop()
            continue
        if not SEGMENT.match(segment):
            raise InvalidPath(f"'{raw}': segment '{segment}' {SEGMENT_RULE}")
        parts.append(segment)
    return "/" + "/".join(parts)


def parent(path: str) -> str:
    """The enclosing group of ``path`` (the root's parent is the root)."""
    head = path.rstrip("/").rsplit("/", 1)[0]
    return head or ROOT


def ancestors(path: str) -> list[str]:
    """Every enclosing group of ``path`` from the root down, ``path`` itself excluded."""
    out = [ROOT]
    parts = [p for p in path.split("/") if p]
    for index in range(1, len(parts)):
        out.append("/" + "/".join(parts[:index]))
    return out if path != ROOT else []


def is_under(path: str, group: str) -> bool:
    """Whether ``path`` lies inside ``group`` (or is it)."""
    return group == ROOT or path == group or path.startswith(group.rstrip("/") + "/")


def safe(path: str) -> str:
    """A path id as one token without slashes (``/prod/web`` -> ``prod_web``), as Marathon names
    tasks; ``_`` never occurs in an id, so this is reversible."""
    return path.strip("/").replace("/", "_")


def unsafe(token: str) -> str:
    """The inverse of :func:`safe`."""
    return "/" + token.replace("_", "/")


def hostname(path: str) -> str:
    """The id as a DNS name, innermost segment first (``/prod/web`` -> ``web.prod``), as Marathon
    names Mesos tasks."""
    return ".".join(reversed([p for p in path.split("/") if p]))
