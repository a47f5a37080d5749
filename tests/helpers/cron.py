"""Test helpers for the cron framework.

:class:`Harness` is a pure harness around the planner that plays store and master: it applies the
planner's effects the way the service does (store writes, then the actions that wait for them, calling
the planner back for :class:`Recorded`), keeps every action for assertions, and answers for the master.
:class:`CronOnACluster` hosts the real framework service on the in-process cluster.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from twisted.trial import unittest

from frameworks.cron import effects as fx
from frameworks.cron import plugin
from frameworks.cron.calendar import to_ms
from frameworks.cron.planner import Planner, Settings
from frameworks.cron.records import JOBS, RUNS
from mesostw import flags as flaglib
from mesostw.model import task as T
from mesostw.model.resources import Resources
from mesostw.model.task import Offer, TaskInfo, TaskStatus, new_uuid
from mesostw.store import Delete, Put
from mesostw.store.memory import MemoryStateStore
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster
from tests.helpers.hosting import ClusterHost
from tests.helpers.web import Client

T0 = to_ms(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
MINUTE = 60_000


def job(name: str, schedule: str | None = "R/2024-05-01T12:01:00Z/PT1M", **fields: Any) -> dict[str, Any]:
    """A job as chronos-python would post it."""
    body: dict[str, Any] = {"name": name, "command": "true", "owner": "ops@example.com", "disabled": False}
    if schedule is not None:
        body["schedule"] = schedule
    body.update(fields)
    return body


class Harness:
    """A planner, a store as a dict of JSON values, and a record of every action it asked for."""

    def __init__(self, settings: Settings | None = None, store: dict[str, Any] | None = None, now: int = T0):
        self.settings = settings or Settings(lookahead_ms=5_000, retry_delay_ms=30_000)
        self.planner = Planner(self.settings)
        self.store: dict[str, Any] = {} if store is None else store
        self.now = now
        self.actions: list[Any] = []
        self.durable = True
        self.held: list[fx.Action] = []
        self.held_ops: list[Any] = []
        self._offers = 0

    # -- effects ------------------------------------------------------------------------------------

    def apply(self, effects: fx.Effects) -> fx.Effects:
        self.actions.extend(effects.now)
        if self.durable:
            self._write(effects.ops)
            self._after(effects.after)
        else:
            self.held_ops.extend(effects.ops)
            self.held.extend(effects.after)
        return effects

    def _write(self, ops: list[Any]) -> None:
        for op in ops:
            if isinstance(op, Put):
                self.store[op.path] = json.loads(op.value)
            elif isinstance(op, Delete):
                self.store.pop(op.path, None)

    def _after(self, actions: list[fx.Action]) -> None:
        for action in actions:
            self.actions.append(action)
            if isinstance(action, fx.Recorded):
                self.apply(self.planner.recorded(action.keys, self.now))

    def release(self) -> None:
        """Writes held back (``durable = False``) become durable now."""
        held, self.held = self.held, []
        ops, self.held_ops = self.held_ops, []
        self.durable = True
        self._write(ops)
        self._after(held)

    def of(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]

    def clear(self) -> None:
        self.actions = []

    # -- events -------------------------------------------------------------------------------------

    def recover(self) -> Harness:
        """A new planner over the same store (a restart or a new leader), recovered and registered; writes
        this one held back are lost, as in a crash."""
        fresh = Harness(self.settings, self.store, self.now)
        jobs = {k.split("/", 1)[1]: v for k, v in self.store.items() if k.startswith(JOBS + "/")}
        runs = {k.split("/", 1)[1]: v for k, v in self.store.items() if k.startswith(RUNS + "/")}
        fresh.apply(fresh.planner.recover(jobs, runs, self.now))
        fresh.apply(fresh.planner.registered(self.now))
        return fresh

    def put(self, body: dict[str, Any], kind: str | None = None) -> fx.Effects:
        if kind is None:
            kind = "dependency" if "parents" in body else "iso8601"
        return self.apply(self.planner.put_job(body, kind, self.now))

    def advance_to(self, when: int) -> None:
        """Let time pass until ``when``, ticking at every wakeup the planner asks for."""
        while True:
            wake = self.planner.next_wakeup()
            if wake is None or wake > when:
                break
            self.now = max(self.now, wake)
            self.apply(self.planner.tick(self.now))
        self.now = max(self.now, when)
        self.apply(self.planner.tick(self.now))

    def advance(self, ms: int) -> None:
        self.advance_to(self.now + ms)

    def offer(self, resources: str = "cpus:4;mem:4096;disk:4096", agent: str = "S1", host: str = "host1",
              attributes: dict[str, Any] | None = None) -> list[TaskInfo]:
        """Offer one agent's resources; returns the tasks launched on it."""
        self._offers += 1
        offer = Offer(f"O{self._offers}", "F1", agent, host, Resources.parse(resources),
                      attributes=attributes or {})
        before = len(self.actions)
        self.apply(self.planner.offers([offer], self.now))
        return [t for a in self.actions[before:] if isinstance(a, fx.Launch) for t in a.tasks]

    def update(self, task_id: str, state: str, *, reason: str | None = None, source: str = T.SOURCE_EXECUTOR,
               message: str | None = None, agent: str = "S1", uuid: bool = True) -> fx.Effects:
        status = TaskStatus(task_id, state, message=message, source=source, reason=reason, agent_id=agent,
                            timestamp=self.now / 1000, uuid=new_uuid() if uuid else None)
        return self.apply(self.planner.status(status, self.now))

    def finish(self, task_id: str, state: str = T.FINISHED) -> None:
        self.update(task_id, T.RUNNING)
        self.update(task_id, state)

    # -- views --------------------------------------------------------------------------------------

    def record(self, name: str) -> Any:
        return self.planner.jobs[name]

    def stored_job(self, name: str) -> dict[str, Any]:
        return self.store[f"{JOBS}/{name}"]

    def stored_runs(self, name: str | None = None) -> dict[str, Any]:
        return {k: v for k, v in self.store.items()
                if k.startswith(RUNS + "/") and (name is None or v["job"] == name)}


class CronOnACluster:
    """A cluster, a store, and the cron framework hosted on them (restartable on the same store)."""

    def __init__(self, test: unittest.TestCase, **flags: Any):
        self.test = test
        self.cluster = Cluster(agents=2)
        if isinstance(test, ClockTestCase):
            test.useClock(self.cluster.clock)
        test.addCleanup(self.cluster.stop)
        self.cluster.clock.advance(T0 / 1000)  # 2024-05-01T12:00:00Z
        self.cluster.settle()
        self.store = MemoryStateStore()
        self.flags = flags
        self.start()

    def start(self) -> None:
        self.host = ClusterHost(self.cluster, "cron", store=self.store)
        self.service: Any = plugin.makeService(self.host, flaglib.defaults(plugin.FLAGS, **self.flags))
        self.service.startService()
        self.test.addCleanup(self.stop, self.service)
        self.cluster.settle()
        self.client = Client(self.host.router, self.cluster.clock)

    def stop(self, service: Any) -> None:
        if service.running:
            service.stopService()
            self.cluster.settle()

    def restart(self) -> None:
        self.service.stopService()
        self.cluster.settle()
        self.start()

    def post(self, body: dict[str, Any], path: str = "/v1/scheduler/iso8601") -> int:
        return self.client.request("POST", path, json.dumps(body).encode(),
                                   {"Content-Type": "application/json"}).code

    def job(self, name: str) -> Any:
        return self.client.get_json(f"/v1/scheduler/job/{name}")

    def launched(self, name: str) -> list[str]:
        """Task IDs of the job that executors were asked to run, in order."""
        ids = []
        for containerizer in self.cluster.containerizers:
            for executor in containerizer.executors.values():
                for event in executor.events:
                    if event["type"] == "LAUNCH":
                        task_id = event["launch"]["task"]["task_id"]["value"]
                        if f":{name}:" in task_id:
                            ids.append(task_id)
        return sorted(ids)

    def advance(self, seconds: float) -> None:
        self.cluster.advance(seconds, step=0.5)


