"""Runs the health and readiness checks of running instances on the reactor's clock.

Each running instance gets one timer per HTTP, HTTPS or TCP health check of its app
version (the first probe at once, then every ``intervalSeconds``) and, while not ready,
one for its readiness check; COMMAND and MESOS_* checks run on the agent. Probes go
through a :class:`~frameworks.service.probes.Prober` (a real one on sockets, a scripted
one in tests), at most ``concurrency`` at a time;
a check whose previous probe is still out is skipped, so a slow task never piles
up probes. Results go back to the runtime, which owns the instances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from frameworks.service.appdef import App, HealthCheck, ReadinessCheck
from frameworks.service.health import Result
from frameworks.service.instances import Instance
from frameworks.service.probes import Prober

log = Logger()

READINESS = -1  # the timer key of an instance's readiness check


class HealthMonitor:
    def __init__(self, clock: Any, prober: Prober, concurrency: int,
                 on_health: Callable[[Instance, HealthCheck, Result], None],
                 on_readiness: Callable[[Instance, ReadinessCheck, Result], None]):
        self.clock = clock
        self.prober = prober
        self.on_health = on_health
        self.on_readiness = on_readiness
        self._semaphore = defer.DeferredSemaphore(max(1, concurrency))
        self._timers: dict[tuple[str, int], Any] = {}
        self._inflight: set[tuple[str, int]] = set()
        self.probes = 0

    def watch(self, instance: Instance, spec: App) -> None:
        """Start checking a running instance with its version's checks (those the agent runs excepted:
        their results come in status updates)."""
        for check in spec.health_checks:
            if not check.on_agent:
                self._schedule(instance, spec, check.index, 0)
        if spec.readiness_checks and not (instance.readiness and instance.readiness.ready):
            self._schedule(instance, spec, READINESS, 0)

    def unwatch(self, task_id: str) -> None:
        for key in [k for k in self._timers if k[0] == task_id]:
            call = self._timers.pop(key)
            if call.active():
                call.cancel()

    @property
    def idle(self) -> bool:
        """No probe is out."""
        return not self._inflight

    def watching(self, task_id: str) -> bool:
        return any(k[0] == task_id for k in self._timers)

    def stop(self) -> None:
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()

    def _schedule(self, instance: Instance, spec: App, index: int, delay: float) -> None:
        key = (instance.task_id, index)
        old = self._timers.get(key)
        if old is not None and old.active():
            old.cancel()
        self._timers[key] = self.clock.callLater(delay, self._probe, instance, spec, index)

    def _probe(self, instance: Instance, spec: App, index: int) -> None:
        key = (instance.task_id, index)
        self._timers.pop(key, None)
        if index == READINESS:
            readiness = spec.readiness_checks[0]
            interval = float(readiness.interval)
        else:
            check = spec.health_checks[index]
            interval = float(check.interval)
        self._schedule(instance, spec, index, interval)
        if key in self._inflight:
            return
        self._inflight.add(key)
        self.probes += 1
        d = self._semaphore.run(self._start, instance, spec, index)

        def done(result: Any) -> None:
            self._inflight.discard(key)
            if key not in self._timers:
                return  # unwatched meanwhile: the instance is gone or being killed
            if not isinstance(result, Result):
                log.failure("Probe of {task} failed", result, task=instance.task_id)
                result = Result(False, "probe error")
            if index == READINESS:
                self.on_readiness(instance, spec.readiness_checks[0], result)
                if instance.readiness is not None and instance.readiness.ready:
                    self.unwatch_one(instance.task_id, READINESS)
            else:
                self.on_health(instance, spec.health_checks[index], result)

        d.addBoth(done)

    def unwatch_one(self, task_id: str, index: int) -> None:
        call = self._timers.pop((task_id, index), None)
        if call is not None and call.active():
            call.cancel()

    def _start(self, instance: Instance, spec: App, index: int) -> defer.Deferred:
        if index == READINESS:
            readiness = spec.readiness_checks[0]
            port = _named_port(instance, spec, readiness.port_name)
            if port is None:
                return defer.succeed(Result(False, f"no port named {readiness.port_name}"))
            return self.prober.http(instance.host, port, readiness.path, readiness.protocol == "HTTPS",
                                    readiness.timeout, keep_body=readiness.preserve_last_response)
        check = spec.health_checks[index]
        port = check.port if check.port is not None else _indexed_port(instance, check.port_index or 0)
        if port is None:
            return defer.succeed(Result(False, f"no host port at index {check.port_index}"))
        if check.kind == "TCP":
            return self.prober.tcp(instance.host, port, check.timeout)
        d = self.prober.http(instance.host, port, check.path, check.kind == "HTTPS", check.timeout)
        if check.ignore_1xx:
            d.addCallback(lambda r: Result(True) if r.status is not None and 100 <= r.status < 200 else r)
        return d


def _indexed_port(instance: Instance, index: int) -> int | None:
    return instance.ports[index] if index < len(instance.ports) else None


def _named_port(instance: Instance, spec: App, name: str) -> int | None:
    for index, definition in enumerate(spec.port_definitions):
        if definition.get("name") == name:
            return _indexed_port(instance, index)
    return None
