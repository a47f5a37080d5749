"""A master core holding a large cluster, built through its real methods, for benchmarks and scale tests.

:func:`build` registers agents (``Master.registerAgent``), subscribes frameworks
(``Master.subscribe``), launches tasks by accepting the master's own offers with v1 ACCEPT calls
(``Master.call``, as every scheduler transport does) and reports them running with acknowledged
status updates (``Master.statusUpdates``, ``Master.acknowledge``), as agents do over PB. Only
the transports are left out: links record nothing and answer pings. Time comes from a
:class:`task.Clock` set to the wall clock, so timestamps look like a live master's.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer, task
from zope.interface import implementer

from mesostw import flags as flaglib
from mesostw.allocator.hierarchical import HierarchicalAllocator
from mesostw.interfaces import IAgentLink, IFrameworkLink
from mesostw.master.flags import MASTER_FLAGS
from mesostw.master.master import Master
from mesostw.master.registry import RegistryState
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.model.task import Offer, TaskStatus, new_uuid

AGENT_RESOURCES = "cpus:32;mem:131072;disk:1048576;ports:[31000-32000]"


@implementer(IAgentLink)
class QuietAgentLink:
    """An agent's link that counts what the master sends and answers pings at once."""

    def __init__(self) -> None:
        self.sent = 0

    def runTasks(self, framework_info: Any, tasks: Any, executor: Any = None) -> None:
        self.sent += 1

    def killTask(self, framework_id: str, task_id: str, grace_period: float | None = None) -> None:
        self.sent += 1

    def acknowledge(self, acknowledgements: Any) -> None:
        self.sent += 1

    def shutdownFramework(self, framework_id: str) -> None:
        self.sent += 1

    def shutdownExecutor(self, framework_id: str, executor_id: str) -> None:
        self.sent += 1

    def frameworkMessage(self, framework_id: str, executor_id: str, data: bytes) -> None:
        self.sent += 1

    def ping(self) -> defer.Deferred:
        return defer.succeed("pong")

    def removed(self, reason: str) -> None:
        self.sent += 1


@implementer(IFrameworkLink)
class OfferCollector:
    """A framework's link that keeps the offers it is sent and counts the other events."""

    principal = None

    def __init__(self) -> None:
        self.offers: list[Offer] = []
        self.events = 0

    def send(self, event: dict[str, Any]) -> None:
        self.events += 1
        if event["type"] == "OFFERS":
            self.offers += [Offer.from_json(o) for o in event["offers"]["offers"]]

    def close(self) -> None:
        pass


def task_json(task_id: str, agent_id: str, port: int, resources: str | None = None) -> dict[str, Any]:
    """A command task as a framework like Marathon's sends it: cpus, memory, disk and one port (or
    ``resources``, the same for every task)."""
    bag = Resources.parse(resources if resources is not None else f"cpus:0.5;mem:256;disk:512;ports:[{port}-{port}]")
    return {"name": f"app.{task_id}", "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
            "resources": bag.to_json(), "command": {"value": "sleep 3600"},
            "labels": {"labels": [{"key": "app", "value": task_id.split(".")[0]}]}}


class BigCluster:
    """What :func:`build` made: the master, its clock, the agents' links and the frameworks' IDs."""

    def __init__(self, master: Master, clock: task.Clock, links: dict[str, QuietAgentLink],
                 frameworks: list[str], tasks: int):
        self.master, self.clock, self.links, self.frameworks, self.tasks = master, clock, links, frameworks, tasks


def build(agents: int = 10_000, tasks: int = 100_000, frameworks: int = 10, completed: int = 0,
          agent_resources: str = AGENT_RESOURCES, task_resources: str | None = None, **flags: Any) -> BigCluster:
    """A leading master with ``agents`` agents and ``tasks`` running tasks spread evenly over them, launched
    by ``frameworks`` frameworks; ``completed`` more tasks per framework ran and finished (its history).
    Each task holds one port of its own and a few scalars, or ``task_resources`` when given."""
    clock = task.Clock()
    clock.advance(time.time())
    config = flaglib.defaults(MASTER_FLAGS, hostname="127.0.0.1", **flags)
    master = Master(config, HierarchicalAllocator(clock, randomize=False), clock, master_id="bench")
    master.recover(RegistryState())
    links: dict[str, QuietAgentLink] = {}
    resources = Resources.parse(agent_resources)
    for index in range(agents):
        link = QuietAgentLink()
        info = AgentInfo(hostname=f"agent-{index:05d}.example", port=5051, resources=resources,
                         attributes={"rack": f"r{index % 40}"})
        d = master.registerAgent(link, info, "1.0.0")
        d.addCallback(lambda result, link=link: links.__setitem__(result[0], link))
    clock.advance(0)
    collectors = []
    framework_ids = []
    for index in range(frameworks):
        collector = OfferCollector()
        info = FrameworkInfo(user="bench", name=f"framework-{index}", checkpoint=True, failover_timeout=604800.0,
                             hostname="scheduler.example")
        framework_ids.append(master.subscribe(collector, info))
        collectors.append(collector)
    per_agent = -(-tasks // agents) if agents else 0
    launched = 0
    ports: dict[str, int] = {}
    rounds = 0
    while launched < tasks + completed * frameworks:
        rounds += 1
        if rounds > 1000:
            raise RuntimeError(f"only {launched} tasks launched")
        clock.advance(0)  # allocation: offers go to the frameworks
        for framework_id, collector in zip(framework_ids, collectors, strict=True):
            offers, collector.offers = collector.offers, []
            for offer in offers:
                want = tasks + completed * frameworks - launched
                if want <= 0:
                    master.call(framework_id, api.parse_call(api.call(
                        framework_id, "DECLINE", {"offer_ids": [{"value": offer.id}]}))[1])
                    continue
                count = min(want, per_agent if launched < tasks else completed)
                infos = []
                for _ in range(count):
                    port = ports.get(offer.agent_id, 31000)
                    ports[offer.agent_id] = port + 1
                    infos.append(task_json(f"app{launched % 97}.{launched:07d}", offer.agent_id, port, task_resources))
                    launched += 1
                call = api.call(framework_id, "ACCEPT", {
                    "offer_ids": [{"value": offer.id}],
                    "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}]})
                master.call(framework_id, api.parse_call(call)[1])
    clock.advance(0)
    running(master, clock)
    if completed:
        finish_some(master, clock, completed)
    clock.advance(0)
    return BigCluster(master, clock, links, framework_ids, tasks)


def _update(master: Master, clock: task.Clock, agent_id: str, framework_id: str, task_id: str, state: str) -> None:
    status = TaskStatus(task_id, state, source=T.SOURCE_EXECUTOR, agent_id=agent_id, executor_id=task_id,
                        timestamp=clock.seconds(), uuid=new_uuid(), message="Command started" if state == T.RUNNING
                        else "Command exited with status 0")
    master.statusUpdates(agent_id, [(framework_id, status)])
    assert status.uuid is not None
    master.acknowledge(framework_id, agent_id, task_id, status.uuid)


def running(master: Master, clock: task.Clock) -> None:
    """Every staging task reports TASK_RUNNING, acknowledged."""
    for framework_id, framework in list(master.frameworks.items()):
        for task_ in list(framework.tasks.values()):
            if task_.state == T.STAGING:
                _update(master, clock, task_.agent_id, framework_id, task_.task_id, T.RUNNING)


def finish_some(master: Master, clock: task.Clock, per_framework: int) -> None:
    """The newest ``per_framework`` tasks of each framework finish (they join its completed tasks)."""
    for framework_id, framework in list(master.frameworks.items()):
        for task_ in list(framework.tasks.values())[-per_framework:]:
            _update(master, clock, task_.agent_id, framework_id, task_.task_id, T.FINISHED)
