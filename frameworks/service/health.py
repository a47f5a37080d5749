"""Health and readiness of instances: the state machines, without any I/O.

:class:`HealthState` follows Marathon's ``Health``: failures before the first
success are ignored during ``gracePeriodSeconds``; ``alive`` is whether the last
result was a success; after ``maxConsecutiveFailures`` failures in a row (0 =
never) the instance is to be killed. The probes themselves live in
:mod:`frameworks.service.probes`; the scheduling of checks in
:mod:`frameworks.service.monitor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from frameworks.service.appdef import HealthCheck
from frameworks.service.timestamps import format_ts


@attrs.frozen
class Result:
    """One probe's outcome."""

    ok: bool
    cause: str | None = None
    status: int | None = None   # the HTTP status, for readiness checks
    body: str | None = None     # the HTTP body, kept when a readiness check preserves it


@attrs.define
class HealthState:
    """The health of one instance for one of its app version's health checks."""

    alive: bool | None = None
    consecutive_failures: int = 0
    first_success: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_failure_cause: str | None = None

    def record(self, result: Result, now: float, check: HealthCheck, started_at: float | None,
               grace: bool = True) -> bool:
        """Take a probe result (failures in the grace period ignored unless ``grace`` is off: the
        agent's checks arrive with it applied); returns whether ``alive`` changed."""
        before = self.alive
        if result.ok:
            self.alive = True
            self.consecutive_failures = 0
            self.last_success = now
            if self.first_success is None:
                self.first_success = now
        else:
            if grace and self.in_grace(check, started_at, now):
                return False
            self.alive = False
            self.consecutive_failures += 1
            self.last_failure = now
            self.last_failure_cause = result.cause or "failed"
        return self.alive != before

    def in_grace(self, check: HealthCheck, started_at: float | None, now: float) -> bool:
        """Failures are ignored until the first success or until the grace period has passed."""
        if self.first_success is not None:
            return False
        return started_at is None or now - started_at < check.grace_period

    def should_kill(self, check: HealthCheck) -> bool:
        limit = check.max_consecutive_failures
        return limit > 0 and self.consecutive_failures >= limit

    def to_json(self, task_id: str) -> dict[str, Any]:
        """A ``healthCheckResults`` entry (marathon-python's exact keys)."""
        return {
            "alive": bool(self.alive),
            "consecutiveFailures": self.consecutive_failures,
            "firstSuccess": _ts(self.first_success),
            "lastFailure": _ts(self.last_failure),
            "lastFailureCause": self.last_failure_cause,
            "lastSuccess": _ts(self.last_success),
            "instanceId": task_id,
            "taskId": task_id,
        }

    def to_store(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_store(cls, data: dict[str, Any]) -> HealthState:
        known = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _ts(value: float | None) -> str | None:
    return None if value is None else format_ts(value)


def healthy(states: Sequence[HealthState | None], checks: int) -> bool | None:
    """An instance's health over all its checks: True when every check is alive, False when one
    is known to fail, None while some result is still missing (or there are no checks)."""
    if checks == 0:
        return None
    values = [s.alive if s is not None else None for s in states[:checks]]
    values += [None] * (checks - len(values))
    if any(v is False for v in values):
        return False
    if all(v is True for v in values):
        return True
    return None


@attrs.define
class ReadinessState:
    """The readiness of one instance (one readiness check per app at most)."""

    name: str
    ready: bool = False
    last_response: dict[str, Any] | None = None

    def record(self, result: Result, codes: Sequence[int], preserve: bool) -> bool:
        """Take a probe result; returns whether the instance just became ready."""
        if preserve:
            self.last_response = {"status": result.status, "contentType": "text/plain", "body": result.body or ""}
        if self.ready:
            return False
        self.ready = result.status is not None and result.status in codes
        return self.ready

    def to_json(self, task_id: str) -> dict[str, Any]:
        return {"name": self.name, "taskId": task_id, "ready": self.ready, "lastResponse": self.last_response}
