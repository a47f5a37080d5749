"""One clean stop for every mesostw daemon under twistd, on SIGINT or SIGTERM.

Twisted's own handlers call ``reactor.stop()`` on every SIGINT and SIGTERM, so a second
signal while the daemon stops raises ``ReactorNotRunning`` and logs a traceback. Second
signals are common: Ctrl-C pressed twice, or ``make run`` stopped with SIGTERM sent to its
process group (GNU make forwards SIGTERM to its children, so twistd gets it twice). twistd
also re-raises the signal once stopped, so the process dies by it instead of exiting.

:class:`StopOnSignals` takes over those two signals once the reactor runs: the first stops the
reactor (and the daemon then exits with status 0), later ones are only logged.
"""

from __future__ import annotations

import signal
from types import FrameType, ModuleType
from typing import Any

from twisted.application import service
from twisted.internet import error
from twisted.logger import Logger

log = Logger()

#: The signals that stop a daemon.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignals(service.Service):
    """Stops the reactor once on SIGINT or SIGTERM; more of them while stopping are logged, not errors.

    It takes a signal over only where the reactor installed a handler (a daemon started with
    SIGINT ignored, in the background of a shell, keeps ignoring it).
    """

    name = "signals"  # type: ignore[assignment]  # twisted declares Service.name as None

    def __init__(self, reactor: Any = None, signals: ModuleType = signal):
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.signals = signals
        self.stopping = False

    def startService(self) -> None:
        super().startService()
        # The reactor installs its handlers while it starts; take over after that.
        self.reactor.callWhenRunning(self.install)

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            current = self.signals.getsignal(signum)
            if callable(current) and current is not self.signals.default_int_handler:
                self.signals.signal(signum, self.received)

    def received(self, signum: int, frame: FrameType | None = None) -> None:
        """The signal handler: runs between two bytecodes of the reactor's thread, so it only schedules."""
        name = signal.Signals(signum).name
        if self.stopping:
            self.reactor.callFromThread(log.info, "Received {signal} again; already shutting down", signal=name)
            return
        self.stopping = True
        self.reactor.callFromThread(self._stop, name)

    def _stop(self, name: str) -> None:
        log.info("Received {signal}, shutting down.", signal=name)
        try:
            self.reactor.stop()
        except error.ReactorNotRunning:
            pass  # stopping already, for another reason


def daemon_root(*services: service.IService, reactor: Any = None) -> service.MultiService:
    """The root service a twistd plugin returns: ``services`` plus :class:`StopOnSignals`."""
    root = service.MultiService()
    for child in services:
        child.setServiceParent(root)
    StopOnSignals(reactor).setServiceParent(root)
    return root
