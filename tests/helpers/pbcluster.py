"""The in-process cluster over the real wire: every part talks Perspective Broker through its production adapter.

:class:`PBCluster` is :class:`~tests.helpers.cluster.Cluster` (same master core, fake containerizers
and executors, same API) with the direct links replaced by what runs in production: the master
serves :class:`~mesostw.master.pb.MasterRoot` behind the real port switch
(:class:`~mesostw.wire.listen.Listener`); each agent reaches it through its own
:class:`~mesostw.agent.master_client.MasterClient` (detector, connector with backoff, CRAM-MD5,
``PBMasterLink``); frameworks run the real :class:`~mesostw.scheduler.pb.MesosSchedulerDriver`
(or, with ``local=True``, the in-process driver). Each agent also listens on its own port
(``AgentRoot``, behind the port switch) and its fake executors reach it through the real
:class:`~mesostw.executor.driver.ExecutorDriver` (:class:`PBFakeExecutor`). Each process is a
host of an in-memory TCP network (``tests/helpers/network.py``) on the cluster's clock, so
connecting, backing off, authenticating and losing connections all run their production code
paths, in milliseconds.

The master listens at 127.0.0.1:5050; agent N at 127.0.1.N (its port as in the direct cluster,
5051 and up), where its executors run too; frameworks dial from 127.0.2.N.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

from twisted.internet import defer

from mesostw.agent import executor_stream
from mesostw.agent.agent import Agent
from mesostw.agent.master_client import MasterClient
from mesostw.agent.pb import AgentRoot
from mesostw.auth.credentials import Credential, load_credentials
from mesostw.executor.driver import Executor, ExecutorDriver
from mesostw.http.router import Router
from mesostw.master.pb import MasterRoot
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.model.task import TaskStatus, new_uuid
from mesostw.scheduler.pb import MesosSchedulerDriver
from mesostw.wire.listen import Listener
from tests.helpers.cluster import Cluster, FakeExecutor, RecordingScheduler, later
from tests.helpers.network import Host, Network

MASTER_IP, MASTER_PORT = "127.0.0.1", 5050


class _EventsToFake(ExecutorDriver):
    """The real executor driver, showing its fake executor each event once the driver has handled it."""

    def __init__(self, fake: PBFakeExecutor, environ: dict[str, str], reactor: Host):
        super().__init__(Executor(), environ, reactor)
        self.fake = fake

    def handle_event(self, event: dict[str, Any]) -> None:
        self.fake.events.append(event)
        super().handle_event(event)
        self.fake.act(event)


class PBFakeExecutor(FakeExecutor):
    """A :class:`FakeExecutor` in its own process: it reaches its agent over PB through an
    :class:`ExecutorDriver` (from the environment the agent gave it, on ``reactor``), and its process
    exits when the driver stops, whether told to or by itself (when it loses an agent it cannot wait for)."""

    def __init__(self, agent: Agent, clock: Any, framework_id: str, executor_id: str,
                 environment: dict[str, str] | None = None, reactor: Host | None = None):
        super().__init__(agent, clock, framework_id, executor_id, environment)
        assert reactor is not None
        self.driver = _EventsToFake(self, self.environment, reactor)
        self.status = 0
        self.driver.stopped.addCallback(self._process_exits)

    def subscribe(self) -> None:
        self.driver.start()

    def send(self, event: dict[str, Any]) -> None:
        raise AssertionError("the agent reaches this executor over PB, not directly")

    def act(self, event: dict[str, Any]) -> None:
        self._handle(event)

    def update(self, task_id: str, state: str, message: str | None = None) -> None:
        status = TaskStatus(task_id, state, message=message, source=T.SOURCE_EXECUTOR, uuid=new_uuid(),
                            timestamp=self.clock.seconds())
        self.unacked[status.uuid] = status  # type: ignore[index]  # new_uuid() is never None
        self.driver.sendStatusUpdate(status)

    def message(self, data: bytes) -> None:
        self.driver.sendFrameworkMessage(data)

    def exit(self, status: int = 0) -> None:
        if not self.driver.stopped.called:
            self.status = status
            self.driver.stop()

    def _process_exits(self, _: Any) -> None:
        # What the driver flushed while closing is in flight; the agent reaps the process on a later turn.
        later(self.clock, self.exited.callback, self.status)

    def stop(self) -> defer.Deferred:
        """The process goes away (the cluster stops)."""
        return self.driver.stop()


class PBCluster(Cluster):
    """Master, agents and frameworks joined by PB over an in-memory network (see the module docstring)."""

    def serve(self) -> None:
        self.network = Network(self.clock)
        self.master_host = self.network.host(MASTER_IP)
        self.listener = Listener(self.master_host, MASTER_IP, MASTER_PORT, Router(),
                                 MasterRoot(self.master, self.master_host))
        self.listener.startService()
        #: the agents' listening ports, for their executors
        self.listeners: list[Listener] = []
        #: id(agent) -> the agent's connection to the master
        self.clients: dict[int, MasterClient] = {}
        self.drivers: list[MesosSchedulerDriver] = []
        self._agent_hosts = itertools.count(1)
        self._framework_hosts = itertools.count(1)

    # -- agents --------------------------------------------------------------------------------------------------

    def client(self, agent: Agent) -> MasterClient:
        """The agent's connection to the master."""
        return self.clients[id(agent)]

    def host_of(self, agent: Agent) -> Host:
        return self.client(agent).reactor

    def add_agent(self, resources: str, port: int = 5051, **flags: Any) -> Agent:
        """A new agent at its own address (``ip`` unless given), listening for its executors, connected."""
        flags.setdefault("ip", f"127.0.1.{next(self._agent_hosts)}")
        return super().add_agent(resources, port, **flags)

    def connect(self, agent: Agent) -> MasterClient:
        """Connect the agent: its first connection, or (after :meth:`cut`) the network is back and it
        dials at once, as when its detector reports the master, rather than after the rest of its backoff."""
        client = self.clients.get(id(agent))
        if client is None:
            host = self.network.host(agent.config.ip)
            listener = Listener(host, agent.config.ip, agent.info.port, Router(), AgentRoot(agent, host),
                                {executor_stream.PREAMBLE: executor_stream.ExecutorStreamFactory(agent)})
            listener.startService()
            self.listeners.append(listener)
            agent.containerizer.executor_factory = functools.partial(PBFakeExecutor, reactor=host)  # type: ignore[attr-defined]
            client = MasterClient(agent, host)
            self.clients[id(agent)] = client
            client.startService()
        else:
            self.network.heal(client.reactor.ip, MASTER_IP)
            client.connector.redirect()
        return client

    def cut(self, agent: Agent) -> None:
        """The network between the agent and the master fails: the connection is reset (both sides see it
        lost) and the agent's attempts to connect again are refused until :meth:`connect`."""
        self.network.partition(self.host_of(agent).ip, MASTER_IP)

    def reset(self, agent: Agent) -> None:
        """Reset the agent's connection (a TCP reset); the agent connects again after its backoff."""
        self.network.reset(self.host_of(agent).ip, MASTER_IP)

    # -- frameworks ----------------------------------------------------------------------------------------------

    def framework(self, name: str = "test", scheduler: RecordingScheduler | None = None,
                  principal: str | None = None, implicit_acknowledgements: bool = True, local: bool = False,
                  credential: Credential | None = None, **info: Any) -> tuple[RecordingScheduler, Any]:
        """A started framework, settled: a :class:`MesosSchedulerDriver` over PB (``local=True``: the in-process
        driver). Over PB, ``principal`` authenticates with its secret from the master's ``--credentials``;
        ``credential`` authenticates with any principal and secret."""
        if local:
            return super().framework(name, scheduler, principal, implicit_acknowledgements, **info)
        scheduler = scheduler or RecordingScheduler()
        if credential is None and principal is not None:
            credential = Credential(principal, self.secret(principal))
        host = self.network.host(f"127.0.2.{next(self._framework_hosts)}")
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="nobody", name=name, **info),
                                      f"{MASTER_IP}:{MASTER_PORT}", implicit_acknowledgements=implicit_acknowledgements,
                                      reactor=host, credential=credential)
        self.drivers.append(driver)
        driver.start()
        self.settle()
        return scheduler, driver

    def secret(self, principal: str) -> str:
        """The secret of ``principal`` in the master's ``--credentials``."""
        secrets = load_credentials(self.config.credentials) if self.config.credentials else {}
        if principal not in secrets:
            raise AssertionError(f"the master has no credential for {principal!r}")
        return secrets[principal]

    def cut_framework(self, driver: Any) -> None:
        """The network between the driver and the master fails: the connection is reset and the driver's
        attempts to connect again are refused until :meth:`reconnect_framework`."""
        if not isinstance(driver, MesosSchedulerDriver):
            return super().cut_framework(driver)
        self.network.partition(driver.reactor.ip, MASTER_IP)

    def reconnect_framework(self, driver: Any) -> None:
        """The network is back: the driver dials at once and subscribes again with its framework ID."""
        if not isinstance(driver, MesosSchedulerDriver):
            return super().reconnect_framework(driver)
        self.network.heal(driver.reactor.ip, MASTER_IP)
        driver.connector.redirect()
        self.settle()

    # -- time and shutdown ---------------------------------------------------------------------------------------

    def step(self) -> bool:
        moved = self.network.step()
        return super().step() or moved

    def stop(self) -> None:
        """Frameworks fail over, agents disconnect and executors go (their services stop), nothing listens
        any more, then every core cancels its timers."""
        for driver in self.drivers:
            driver.stopService()
        for client in self.clients.values():
            client.stopService()
        for containerizer in self.containerizers:
            for executor in containerizer.executors.values():
                if isinstance(executor, PBFakeExecutor):
                    executor.stop()
        self.settle()
        for listener in [self.listener, *self.listeners]:
            listener.stopService()
        super().stop()
        self.settle()
