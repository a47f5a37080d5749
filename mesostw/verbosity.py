"""A daemon's logging verbosity: glog's ``--v``, which ``SET_LOGGING_LEVEL`` and ``/logging/toggle`` change.

Mesos logs through glog: INFO, WARNING and ERROR always, and ``VLOG(n)`` messages only while the
verbosity is at least ``n`` (0 by default). mesostw logs through :mod:`twisted.logger`; its verbose
messages go through :func:`vlog`, which emits them (at debug level, with a ``verbosity`` field)
only while the :class:`Verbosity` they name allows it. Raising the level is temporary, as in
libprocess: after the duration given it reverts to the level the daemon started with.

One verbosity per process, as glog has (:data:`VERBOSITY`); code that wants its own (tests) passes
an instance.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger


class Verbosity:
    """The current verbosity level and the timer that reverts it to ``original``."""

    def __init__(self, original: int = 0):
        self.original = original
        self.level = original
        self._revert: Any = None

    def set(self, level: int, duration: float, clock: Any) -> None:
        """Use ``level`` for ``duration`` seconds (on ``clock``), then go back to the original level; a
        later call replaces an earlier one's level and timer."""
        if level < 0:
            raise ValueError(f"a verbosity level is not negative: {level}")
        self.cancel()
        self.level = level
        if level != self.original:
            self._revert = clock.callLater(max(duration, 0.0), self.revert)

    def revert(self) -> None:
        """Back to the original level now."""
        self.cancel()
        self.level = self.original

    def cancel(self) -> None:
        """Forget a pending revert (the level stays as it is)."""
        if self._revert is not None and self._revert.active():
            self._revert.cancel()
        self._revert = None

    @property
    def reverts_at(self) -> float | None:
        """When the level goes back to the original one, or None when no revert is pending."""
        return self._revert.getTime() if self._revert is not None and self._revert.active() else None

    def enabled(self, level: int) -> bool:
        """Whether ``VLOG(level)`` messages are emitted now."""
        return self.level >= level


#: The process's verbosity (the one the daemons' operator APIs change).
VERBOSITY = Verbosity()


def vlog(logger: Logger, level: int, format: str, verbosity: Verbosity | None = None, **fields: Any) -> None:
    """glog's ``VLOG(level)``: emit ``format`` at debug level if the verbosity is at least ``level``."""
    if (verbosity or VERBOSITY).level >= level:
        logger.debug(format, verbosity=level, **fields)
