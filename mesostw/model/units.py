"""Mesos's textual units: durations (``5secs``) and sizes (``2GB``)."""

from __future__ import annotations

import re

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]+)\s*$")


def parse_duration(text: str) -> float:
    """Parse a Mesos duration such as ``5secs``, ``2mins`` or ``100ms`` into seconds.

    A bare number is taken as seconds, which Mesos does not accept but every
    operator types sooner or later.
    """
    text = str(text)
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ValueError(f"negative duration {text!r}")
        return value
    match = _DURATION.match(text)
    if not match or match.group(2) not in _DURATION_UNITS:
        units = ", ".join(_DURATION_UNITS)
        raise ValueError(f"invalid duration {text!r}: expected a number followed by one of {units}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """Render seconds the way Mesos prints durations (``15secs``, ``10mins``)."""
    for unit, factor in (("weeks", 604800.0), ("days", 86400.0), ("hrs", 3600.0), ("mins", 60.0)):
        if seconds >= factor and (seconds / factor).is_integer():
            return f"{int(seconds / factor)}{unit}"
    if seconds >= 1 or seconds == 0:
        return f"{seconds:g}secs"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds * 1e6:g}us"



_BYTES_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_BYTES = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?B)\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """Parse a Mesos size such as ``2GB``, ``512MB`` or ``100B`` (a bare number is bytes)."""
    text = str(text).strip()
    if text.isdigit():
        return int(text)
    match = _BYTES.match(text)
    if not match:
        raise ValueError(f"invalid size {text!r}: expected a number followed by B, KB, MB, GB or TB")
    return int(float(match.group(1)) * _BYTES_UNITS[match.group(2).upper()])


def format_bytes(size: int) -> str:
    """Render a size as Mesos prints one (``2GB``, ``1536MB``)."""
    for unit in ("TB", "GB", "MB", "KB"):
        factor = _BYTES_UNITS[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
