"""``probe``: the smallest framework plugin that exercises a whole host, for the hosting tests.

It registers (again with the framework ID it keeps in its store, so a restarted or newly elected
instance fails over instead of registering anew), launches one command task per ``POST /tasks``,
and serves ``GET /state``. The same module runs inside the master (``--frameworks=probe``) and on
its own (``twistd mesos-probe``), which is the point.
"""

from __future__ import annotations

import getpass
import itertools
from typing import Any

from twisted.application import service
from twisted.logger import Logger

from mesostw.flags import Flag
from mesostw.http.router import query
from mesostw.model.info import FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.scheduler.driver import Scheduler
from mesostw.store import get_json, put_json

log = Logger()

NAME = "probe"
DESCRIPTION = "A probe framework that launches one task per API call (tests only)"
DEFAULT_PORT = 4499
FLAGS = (
    Flag("command", "true", "Shell command of the tasks launched without a command of their own"),
    Flag("task_resources", "cpus:0.1;mem:32", "Resources of every task"),
    Flag("role", "*", "Role the framework registers in"),
    Flag("user", None, "User the tasks run as (default: the framework's own user)"),
    Flag.duration("failover_timeout", 3600.0, "How long the master keeps the framework while it is away"),
)


class ProbeScheduler(Scheduler):
    def __init__(self, probe: ProbeService):
        self.probe = probe

    def registered(self, driver: Any, frameworkId: str, masterInfo: Any) -> None:
        self.probe.registered(frameworkId)

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            available, batch = offer.resources, []
            while self.probe.pending and available.contains(self.probe.resources):
                task = self.probe.pending.pop(0)
                available = available - self.probe.resources
                batch.append({**task, "agent_id": {"value": offer.agent_id}})
            if batch:
                driver.launchTasks([offer.id], batch)
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 0.5})

    def statusUpdate(self, driver: Any, status: Any) -> None:
        self.probe.tasks[status.task_id] = status.state

    def error(self, driver: Any, message: str) -> None:
        log.error("The master refused the probe: {message}", message=message)
        self.probe.error = message


class ProbeService(service.MultiService):
    def __init__(self, host: Any, config: Any):
        super().__init__()
        self.host = host
        self.config = config
        self.resources = Resources.parse(config.task_resources)
        self.framework_id: str | None = None
        self.driver: Any = None
        self.error: str | None = None
        self.pending: list[dict[str, Any]] = []
        self.tasks: dict[str, str] = {}
        self._numbers = itertools.count(1)
        host.router.route("/state", self.state)
        host.router.route("/tasks", self.launch, methods=("POST",))

    def startService(self) -> None:
        super().startService()
        d = self.host.whenLeading()
        d.addCallback(lambda _: get_json(self.host.store, "framework_id"))
        d.addCallback(self._run)
        d.addErrback(lambda failure: log.failure("The probe could not start", failure))

    def _run(self, framework_id: str | None) -> None:
        if not self.running:
            return
        info = FrameworkInfo(user=self.config.user or getpass.getuser(), name="probe", id=framework_id,
                             role=self.config.role, failover_timeout=self.config.failover_timeout)
        self.driver = self.host.driver(ProbeScheduler(self), info)
        self.driver.setServiceParent(self)

    def registered(self, framework_id: str) -> None:
        self.framework_id = framework_id
        put_json(self.host.store, "framework_id", framework_id).addErrback(
            lambda failure: log.failure("Could not keep the framework ID", failure))

    def state(self, request: Any) -> dict[str, Any]:
        return {"framework_id": self.framework_id, "error": self.error, "tasks": self.tasks,
                "pending": [t["task_id"]["value"] for t in self.pending], "api_url": self.host.api_url,
                "principal": self.host.principal}

    def launch(self, request: Any) -> dict[str, Any]:
        command = query(request).get("command") or self.config.command
        task_id = f"probe-{next(self._numbers)}-{int(self.host.reactor.seconds() * 1000)}"
        self.pending.append({"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": ""},
                             "resources": self.resources.to_json(), "command": {"value": command}})
        if self.driver is not None:
            self.driver.reviveOffers()
        return {"task_id": task_id}


def makeService(host: Any, config: Any) -> ProbeService:
    return ProbeService(host, config)
