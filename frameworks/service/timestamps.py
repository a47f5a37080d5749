"""Marathon's timestamps: UTC, ``YYYY-MM-DDTHH:MM:SS.fffZ``.

marathon-python parses only that shape (or the same without milliseconds); ``+00:00``
offsets raise in the client, so every time the API emits goes through :func:`format_ts`.
App and group versions are such timestamps too, and must be unique per app:
:class:`VersionClock` hands out strictly increasing ones even when the clock does not move.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def format_ts(seconds: float) -> str:
    """``seconds`` since the epoch as ``2024-05-01T12:00:00.000Z`` (millisecond precision)."""
    return _format_millis(int(round(seconds * 1000)))


@functools.lru_cache(maxsize=1 << 17)
def _format_millis(millis: int) -> str:
    # Cached: every task's staged and started times are rendered again on each /v2/tasks.
    moment = _EPOCH + datetime.timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def parse_ts(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 timestamp (``Z`` or an offset); ValueError otherwise."""
    if not isinstance(text, str) or not text:
        raise ValueError("a timestamp is a non-empty string")
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return (moment - _EPOCH).total_seconds()


def normalize_version(text: Any) -> str | None:
    """A version as given by a client (any ISO form) in the canonical shape, or None if unreadable."""
    try:
        return format_ts(parse_ts(text))
    except (ValueError, TypeError, OverflowError):
        return None


class VersionClock:
    """Strictly increasing version timestamps from a reactor's clock (millisecond steps)."""

    def __init__(self, clock: Any):
        self.clock = clock
        self._last = 0

    def next(self) -> str:
        millis = int(round(self.clock.seconds() * 1000))
        if millis <= self._last:
            millis = self._last + 1
        self._last = millis
        return format_ts(millis / 1000)

    def observe(self, version: str) -> None:
        """Never hand out a version at or before ``version`` (one recovered from the store)."""
        try:
            millis = int(round(parse_ts(version) * 1000))
        except ValueError:
            return
        self._last = max(self._last, millis)
