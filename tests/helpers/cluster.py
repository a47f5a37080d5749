"""A whole cluster in one process: master and agents cores joined by direct links.

Every link delivers on a later turn of the clock (``clock.callLater(0)``), as
a network would, so nothing re-enters; :meth:`Cluster.settle` turns the clock
until nothing is left to deliver. Executors are fakes that act out their
task's command: ``true`` finishes, ``false`` fails, ``exit N`` fails with N,
anything else runs until killed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from zope.interface import implementer

from mesostw import flags as flaglib
from mesostw.agent.agent import Agent
from mesostw.agent.flags import AGENT_FLAGS
from mesostw.allocator.hierarchical import HierarchicalAllocator
from mesostw.auth.policy import Security
from mesostw.interfaces import IAgentLink, IContainerizer, IExecutorLink, IMasterLink
from mesostw.master.flags import MASTER_FLAGS
from mesostw.master.master import Master
from mesostw.master.registry import RegistryState
from mesostw.model import executor_api as xapi
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.model.task import TaskInfo, TaskStatus, new_uuid
from mesostw.scheduler.driver import Scheduler
from mesostw.scheduler.local import LocalSchedulerDriver


def later(clock: Any, fn: Any, *args: Any) -> None:
    clock.callLater(0, fn, *args)


@implementer(IAgentLink)
class DirectAgentLink:
    """The master's link to an agent in this process: records every call in :attr:`calls` and, when it
    has an ``agent``, delivers the call to it on a later turn of the clock. Without an agent it only
    records (and answers pings), for tests of the master alone."""

    def __init__(self, agent: Agent | None, clock: Any):
        self.agent, self.clock, self.up = agent, clock, True
        self.responsive = True
        self.ip: str | None = None
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _later(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.up and self.agent is not None:
            later(self.clock, getattr(self.agent, name), *args)

    def named(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of ``name``, in order."""
        return [args for called, args in self.calls if called == name]

    def runTasks(self, framework_info, tasks, executor=None):
        self._later("runTasks", framework_info, list(tasks), executor)

    def killTask(self, framework_id, task_id, grace_period=None):
        self._later("killTask", framework_id, task_id, grace_period)

    def acknowledge(self, acknowledgements):
        self._later("acknowledge", list(acknowledgements))

    def shutdownFramework(self, framework_id):
        self._later("shutdownFramework", framework_id)

    def shutdownExecutor(self, framework_id, executor_id):
        self._later("shutdownExecutor", framework_id, executor_id)

    def frameworkMessage(self, framework_id, executor_id, data):
        self._later("frameworkMessage", framework_id, executor_id, data)

    def ping(self):
        d = defer.Deferred()
        if self.up and self.responsive:
            later(self.clock, lambda: d.callback(self.agent.ping() if self.agent is not None else "pong"))
        elif not self.up:
            d.errback(ConnectionError("link is down"))
        return d

    def removed(self, reason):
        self._later("removedByMaster", reason)

    def checkpointResources(self, resources):
        self._later("checkpointResources", resources)


@implementer(IMasterLink)
class DirectMasterLink:
    def __init__(self, master: Master, agent: Agent, clock: Any):
        self.master, self.agent, self.clock = master, agent, clock
        self.agent_link = DirectAgentLink(agent, clock)
        self.agent_link.ip = getattr(agent.config, "ip", None)  # where the agent connects from, as PB's peer
        self.up = True

    def _deferred(self, fn, *args):
        d = defer.Deferred()

        def run():
            if self.up:
                fn(*args).chainDeferred(d)

        later(self.clock, run)
        return d

    def register(self, agent_info):
        return self._deferred(self.master.registerAgent, self.agent_link, agent_info)

    def reregister(self, agent_info, tasks, executors, frameworks):
        return self._deferred(self.master.reregisterAgent, self.agent_link, agent_info, list(tasks),
                              list(executors), list(frameworks))

    def statusUpdates(self, updates):
        if self.up:
            later(self.clock, self.master.statusUpdates, self.agent.id, list(updates))

    def exitedExecutor(self, framework_id, executor_id, status):
        if self.up:
            later(self.clock, self.master.exitedExecutor, self.agent.id, framework_id, executor_id, status)

    def executorMessage(self, framework_id, executor_id, data):
        if self.up:
            later(self.clock, self.master.executorMessage, self.agent.id, framework_id, executor_id, data)

    def unregister(self):
        if self.up:
            later(self.clock, self.master.unregisterAgent, self.agent.id)

    def disconnect(self):
        self.cut()

    def cut(self):
        """Break the connection both ways, as a TCP reset would."""
        self.up = False
        self.agent_link.up = False
        later(self.clock, self.master.agentDisconnected, self.agent.id, self.agent_link)
        later(self.clock, self.agent.masterDisconnected, self)


@implementer(IExecutorLink)
class FakeExecutor:
    """Acts out command tasks from their command text (see the module docstring)."""

    def __init__(self, agent: Agent, clock: Any, framework_id: str, executor_id: str,
                 environment: dict[str, str] | None = None):
        self.agent, self.clock = agent, clock
        self.framework_id, self.executor_id = framework_id, executor_id
        #: what the agent put in the executor's environment
        self.environment = environment or {}
        self.events: list[dict] = []
        self.running: dict[str, TaskInfo] = {}
        self.unacked: dict[bytes, TaskStatus] = {}
        self.exited = defer.Deferred()
        self.closed = False

    def subscribe(self):
        later(self.clock, self.agent.executorSubscribe, self, self.framework_id, self.executor_id,
              xapi.Subscribe())

    def send(self, event):
        self.events.append(event)
        later(self.clock, self._handle, event)

    def close(self):
        self.closed = True

    def update(self, task_id, state, message=None, healthy=None, reason=None):
        status = TaskStatus(task_id, state, message=message, source=T.SOURCE_EXECUTOR, uuid=new_uuid(),
                            timestamp=self.clock.seconds(), healthy=healthy, reason=reason)
        self.unacked[status.uuid] = status
        later(self.clock, self.agent.executorUpdate, self.framework_id, self.executor_id, status)

    def message(self, data: bytes) -> None:
        """Send ``data`` to the framework's scheduler (an executor's MESSAGE call)."""
        later(self.clock, self.agent.executorMessage, self.framework_id, self.executor_id, data)

    def messages(self) -> list[bytes]:
        """The data of every framework message this executor received, in order."""
        import base64

        return [base64.b64decode(e["message"]["data"]) for e in self.events if e["type"] == "MESSAGE"]

    def exit(self, status=0):
        if not self.exited.called:
            later(self.clock, self.exited.callback, status)

    def _act(self, info: TaskInfo) -> None:
        self.running[info.task_id] = info
        self.update(info.task_id, T.RUNNING)
        command = (info.command.value if info.command else "") or ""
        if command == "true":
            self.update(info.task_id, T.FINISHED, "Command exited with status 0")
        elif command == "false" or command.startswith("exit "):
            code = 1 if command == "false" else int(command.split()[1])
            self.update(info.task_id, T.FAILED if code else T.FINISHED, f"Command exited with status {code}")

    def _handle(self, event):
        kind = event["type"]
        if kind == "LAUNCH":
            self._act(TaskInfo.from_json(event["launch"]["task"]))
        elif kind == "LAUNCH_GROUP":
            for task in event["launch_group"]["task_group"]["tasks"]:
                self._act(TaskInfo.from_json(task))
        elif kind == "KILL":
            task_id = event["kill"]["task_id"]["value"]
            self.update(task_id, T.KILLED, "Command terminated with signal Terminated")
        elif kind == "SHUTDOWN":
            for task_id in self.running:
                self.update(task_id, T.KILLED)
            self.exit(0)
        elif kind == "ACKNOWLEDGED":
            import base64

            uuid_bytes = base64.b64decode(event["acknowledged"]["uuid"])
            status = self.unacked.pop(uuid_bytes, None)
            if status is not None and status.terminal and status.task_id in self.running:
                del self.running[status.task_id]
                if not self.running and not self.unacked:
                    self.exit(0)


@implementer(IContainerizer)
class FakeContainerizer:
    """Starts a :class:`FakeExecutor` per container; ``subscribe=False`` leaves them silent.

    ``executor_factory`` makes the executors (``FakeExecutor`` by default; the PB cluster's talk to their
    agent over PB): it takes the agent, the clock, the framework and executor IDs and the environment."""

    def __init__(self, clock: Any):
        self.clock = clock
        self.agent: Agent | None = None
        self.executor_factory: Any = FakeExecutor
        self.executors: dict[str, FakeExecutor] = {}
        self.subscribe = True
        self.fail_launch = False
        self.destroyed: list[str] = []
        #: container ID -> the resources it was launched or last updated with
        self.resources: dict[str, Resources] = {}
        #: container ID -> the Limitation it runs into (set by a test)
        self.limitations: dict[str, Any] = {}
        #: container IDs that recover() reports still running
        self.alive: set[str] = set()
        #: container ID -> what the agent asked its executor to preload
        self.preloads: dict[str, tuple[str, ...]] = {}
        #: container ID -> whether the agent asked for the native command executor
        self.natives: dict[str, bool] = {}

    def recover(self, records):
        return defer.succeed({r.container_id for r in records} & self.alive)

    def launch(self, container_id, executor_info, framework_info, directory, environment, user, resources=None,
               preload=(), native=False):
        self.preloads[container_id] = tuple(preload)
        self.natives[container_id] = native
        if self.fail_launch:
            return defer.fail(RuntimeError("no room for containers"))
        executor = self.executor_factory(self.agent, self.clock, framework_info.id, executor_info.executor_id,
                                         dict(environment))
        self.executors[container_id] = executor
        self.resources[container_id] = resources
        if self.subscribe:
            executor.subscribe()
        return defer.succeed(4242)

    def update(self, container_id, resources):
        self.resources[container_id] = resources

    def limitation(self, container_id):
        return self.limitations.get(container_id)

    def record(self, container_id):
        from mesostw.agent.containers import ContainerRecord

        executor = self.executors.get(container_id)
        if executor is None:
            return None
        return ContainerRecord(container_id, executor.framework_id, executor.executor_id, "/sandbox", 4242)

    def wait(self, container_id):
        return self.executors[container_id].exited

    def destroy(self, container_id):
        self.destroyed.append(container_id)
        executor = self.executors.get(container_id)
        if executor is not None:
            executor.exit(9)
        return defer.succeed(None)

    def usage(self, container_id):
        return {}

    def by_executor(self, executor_id):
        return [e for e in self.executors.values() if e.executor_id == executor_id]


class RecordingScheduler(Scheduler):
    """Keeps every callback; launches from a list of pending tasks when offers come."""

    def __init__(self):
        self.offers, self.updates, self.errors, self.lost_agents, self.rescinded = [], [], [], [], []
        self.lost_executors = []
        #: (executor ID, agent ID, data) of every framework message
        self.messages: list[tuple[str, str, bytes]] = []
        #: (framework ID, MasterInfo) of every registration, the MasterInfo of every re-registration
        self.registrations: list[tuple[str, Any]] = []
        self.reregistrations: list[Any] = []
        self.disconnections = 0
        self.framework_id = None
        self.pending: list[dict] = []
        self.decline_unused = True
        #: every InverseOffer received, and the IDs of those rescinded
        self.inverse_offers: list[Any] = []
        self.inverse_rescinded: list[str] = []

    def registered(self, driver, frameworkId, masterInfo):
        self.framework_id = frameworkId
        self.registrations.append((frameworkId, masterInfo))

    def reregistered(self, driver, masterInfo):
        self.reregistrations.append(masterInfo)

    def disconnected(self, driver):
        self.disconnections += 1

    def frameworkMessage(self, driver, executorId, agentId, data):
        self.messages.append((executorId, agentId, data))

    def resourceOffers(self, driver, offers):
        self.offers.extend(offers)
        for offer in offers:
            if self.pending:
                batch, self.pending = self.pending, []
                for t in batch:
                    t["agent_id"] = {"value": offer.agent_id}
                driver.launchTasks([offer.id], batch)
            elif self.decline_unused:
                driver.declineOffer(offer.id)

    def offerRescinded(self, driver, offerId):
        self.rescinded.append(offerId)

    def inverseOffers(self, driver, offers):
        self.inverse_offers.extend(offers)

    def inverseOfferRescinded(self, driver, inverseOfferId):
        self.inverse_rescinded.append(inverseOfferId)

    def statusUpdate(self, driver, status):
        self.updates.append(status)

    def slaveLost(self, driver, agentId):
        self.lost_agents.append(agentId)

    def executorLost(self, driver, executorId, agentId, status):
        self.lost_executors.append((executorId, agentId, status))

    def error(self, driver, message):
        self.errors.append(message)

    def states(self, task_id):
        return [u.state for u in self.updates if u.task_id == task_id]


def command_task(task_id: str, command: str, resources: str = "cpus:0.1;mem:32") -> dict:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": ""},
            "resources": Resources.parse(resources).to_json(), "command": {"value": command}}


class Cluster:
    """Master + agents + schedulers on one :class:`task.Clock`, joined by direct links.

    :class:`tests.helpers.pbcluster.PBCluster` is the same cluster over the real Perspective Broker
    adapters: a test written against this API (agents :meth:`cut` and :meth:`connect`, drivers cut and
    reconnected with :meth:`cut_framework` and :meth:`reconnect_framework`) runs on either, as the
    ``cluster_class`` of the test cases in ``tests/unit/test_master.py`` and ``test_agent.py`` does.
    """

    def __init__(self, agents: int = 2, resources: str = "cpus:2;mem:1024;disk:1024;ports:[31000-32000]",
                 work_dir: str = "/nonexistent-sandbox-root", clock: task.Clock | None = None, **master_flags: Any):
        self.clock = clock if clock is not None else task.Clock()
        self.config = flaglib.defaults(MASTER_FLAGS, hostname="127.0.0.1", **master_flags)
        self.allocator = HierarchicalAllocator(self.clock, self.config.weights, randomize=False)
        self.master = Master(self.config, self.allocator, self.clock, master_id="M",
                             security=Security.from_config(self.config, self.clock))
        self.master.recover(RegistryState())
        self.serve()
        self.agents: list[Agent] = []
        self.standbys: list[Master] = []
        self.links: dict[str, DirectMasterLink] = {}
        self.containerizers: list[FakeContainerizer] = []
        self.agent_flags: dict[str, Any] = {"master": "127.0.0.1:5050", "work_dir": work_dir}
        self.agent_config = flaglib.defaults(AGENT_FLAGS, **self.agent_flags)
        for index in range(agents):
            self.add_agent(resources, port=5051 + index)
        self.settle()

    def serve(self) -> None:
        """Open the master to agents and frameworks: nothing to open for direct links."""

    def standby(self, master_id: str = "F", hostname: str = "standby.example") -> Master:
        """Another master of this cluster that does not lead: it never recovers a registry here, so it
        is a follower or an elected master still recovering, as its election (the test) says."""
        config = flaglib.defaults(MASTER_FLAGS, hostname=hostname)
        allocator = HierarchicalAllocator(self.clock, config.weights, randomize=False)
        master = Master(config, allocator, self.clock, master_id=master_id)
        self.standbys.append(master)
        return master

    def add_agent(self, resources: str, port: int = 5051, **flags: Any) -> Agent:
        """A new agent, connected; ``flags`` override the cluster's agent flags for this one."""
        containerizer = FakeContainerizer(self.clock)
        info = AgentInfo(hostname=flags.get("hostname") or "127.0.0.1", port=port, resources=Resources.parse(resources))
        config = flaglib.defaults(AGENT_FLAGS, **{**self.agent_flags, **flags}) if flags else self.agent_config
        agent = Agent(config, info, containerizer, self.clock)
        containerizer.agent = agent
        self.agents.append(agent)
        self.containerizers.append(containerizer)
        self.connect(agent)
        return agent

    def connect(self, agent: Agent) -> Any:
        """Connect an agent (again) to the master; it (re-)registers."""
        link = DirectMasterLink(self.master, agent, self.clock)
        self.links[id(agent)] = link
        agent.masterConnected(link)
        return link

    def cut(self, agent: Agent) -> None:
        """Break the agent's connection to the master both ways, as a TCP reset would; the agent stays
        away until :meth:`connect`."""
        self.links[id(agent)].cut()

    def framework(self, name: str = "test", scheduler: RecordingScheduler | None = None,
                  principal: str | None = None, implicit_acknowledgements: bool = True,
                  **info: Any) -> tuple[RecordingScheduler, Any]:
        """A started framework on a local driver, settled; ``principal`` is the one its host vouches for."""
        scheduler = scheduler or RecordingScheduler()
        driver = LocalSchedulerDriver(scheduler, FrameworkInfo(user="nobody", name=name, **info), self.master,
                                      implicit_acknowledgements=implicit_acknowledgements, principal=principal)
        driver.start()
        self.settle()
        return scheduler, driver

    def cut_framework(self, driver: Any) -> None:
        """Break a driver's connection to the master, as a TCP reset would; it stays away until
        :meth:`reconnect_framework` (a scheduler that is gone for good: just never reconnect it)."""
        driver.disconnect()

    def reconnect_framework(self, driver: Any) -> None:
        """A driver cut off by :meth:`cut_framework` connects again and subscribes with its framework ID."""
        driver.reconnect()
        self.settle()

    def settle(self, rounds: int = 1000) -> None:
        """Deliver everything that is due now (timers in the future stay put); then the master's task
        indexes must agree (see :meth:`assertSound`)."""
        for _ in range(rounds):
            if not self.step():
                self.assertSound()
                return
        raise AssertionError("the cluster did not settle")

    def step(self) -> bool:
        """Run what is due now, once; whether there was anything."""
        due = [c for c in self.clock.getDelayedCalls() if c.getTime() <= self.clock.seconds()]
        if due:
            self.clock.advance(0)
        return bool(due)

    def assertSound(self) -> None:
        """Every task the master knows is in exactly one agent's and one framework's index, and what the
        master sums as tasks and offers change agrees with a recount."""
        problems = self.master.tasks.problems() + self.master.offers.problems()
        if problems:
            raise AssertionError("the master's task indexes disagree:\n  " + "\n  ".join(problems))

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """Let ``seconds`` pass in steps, settling after each (and first: what is in flight arrives before
        time passes)."""
        self.settle()
        remaining = seconds
        while remaining > 0:
            delta = min(step, remaining)
            self.clock.advance(delta)
            self.settle()
            remaining -= delta

    def stop(self) -> None:
        for master in [self.master, *self.standbys]:
            master.stop()
        for agent in self.agents:
            agent.stop()
