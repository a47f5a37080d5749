"""The master's v1 operator API: ``POST /api/v1`` (also ``/master/api/v1``).

One :class:`~mesostw.operator.calls.CallTable`, filled by one module per family of calls:

- :func:`~mesostw.operator.common.register_common`: health, flags, version, metrics, logging level,
  and the master's files (``/master/log`` when ``--external_log_file`` names the daemon's log);
- :mod:`mesostw.master.operator_reads`: the state, agents, frameworks, executors, tasks, roles,
  weights and the master itself;
- :mod:`mesostw.master.operator_writes`: weights, teardown, agents marked gone;
- :mod:`mesostw.master.operator_quota`: GET_QUOTA, UPDATE_QUOTA (and the deprecated SET/REMOVE_QUOTA);
- :mod:`mesostw.master.operator_maintenance`: the maintenance schedule and status, START/STOP_MAINTENANCE;
- :mod:`mesostw.master.operator_drain`: DRAIN_AGENT, DEACTIVATE_AGENT, REACTIVATE_AGENT;
- :mod:`mesostw.master.operator_reservations`: reservations and persistent volumes;
- :mod:`mesostw.master.event_stream`: SUBSCRIBE.

A new family (reservations, quota, maintenance, ...) is one more module with a ``register(table,
master)`` called here. The router's filters answer first: like every leader-only endpoint, a master
that does not lead redirects (307) or refuses (503), and HTTP authentication applies as for the other
operator endpoints (the read-write realm: every call is a POST).
"""

from __future__ import annotations

from typing import Any

from mesostw.http.router import Router
from mesostw.master import (
    metrics,
    operator_drain,
    operator_maintenance,
    operator_quota,
    operator_reads,
    operator_reservations,
    operator_writes,
)
from mesostw.master.event_stream import HEARTBEAT_INTERVAL, EventStreams
from mesostw.master.master import Master
from mesostw.operator.calls import MASTER_CALL_TYPES, CallTable
from mesostw.operator.common import register_common
from mesostw.operator.files import AttachedFiles
from mesostw.operator.http import OperatorAPI
from mesostw.verbosity import VERBOSITY, Verbosity

PATHS = ("/api/v1", "/master/api/v1")


class MasterOperatorAPI:
    """The master's call table and its HTTP adapter."""

    def __init__(self, master: Master, flags: dict[str, str], verbosity: Verbosity = VERBOSITY,
                 heartbeat: float = HEARTBEAT_INTERVAL, log_file: str | None = None, clock: Any = None):
        self.master = master
        self.table = CallTable("master", MASTER_CALL_TYPES)
        self.files = AttachedFiles()
        if log_file:
            self.files.attach("/master/log", log_file)
        clock = clock if clock is not None else master.clock
        register_common(self.table, lambda: flags, lambda: metrics.snapshot(master, master.leading), verbosity,
                        clock, self.files)
        operator_reads.register(self.table, master)
        operator_writes.register(self.table, master)
        operator_quota.register(self.table, master)
        operator_maintenance.register(self.table, master)
        operator_drain.register(self.table, master)
        operator_reservations.register(self.table, master)
        self.streams = EventStreams(master, clock, heartbeat)
        self.streams.register(self.table)
        self.http = OperatorAPI(self.table, lambda: master.security, verbosity=verbosity)

    def install(self, router: Router) -> None:
        self.http.install(router, PATHS)
