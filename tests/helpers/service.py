"""The service framework on the in-process cluster: agents with distinct hostnames and attributes,
a scripted prober for health and readiness checks, and its REST API through
:class:`tests.helpers.web.Client` on the cluster's Clock.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from frameworks.service import plugin
from frameworks.service.health import Result
from frameworks.service.service import ServiceFramework
from mesostw import flags as flaglib
from mesostw.agent.agent import Agent
from mesostw.model.info import AgentInfo
from mesostw.model.resources import Resources
from mesostw.store.memory import MemoryStateStore
from tests.helpers.cluster import Cluster, FakeContainerizer
from tests.helpers.hosting import ClusterHost
from tests.helpers.web import Client, Reply

RESOURCES = "cpus:4;mem:4096;disk:4096;ports:[31000-31999]"


def add_agent(cluster: Cluster, hostname: str, resources: str = RESOURCES,
              attributes: dict[str, Any] | None = None, port: int = 5051) -> Agent:
    """An agent on ``hostname`` (the stock cluster's agents all say 127.0.0.1)."""
    containerizer = FakeContainerizer(cluster.clock)
    info = AgentInfo(hostname=hostname, port=port, resources=Resources.parse(resources),
                     attributes=dict(attributes or {}))
    agent = Agent(cluster.agent_config, info, containerizer, cluster.clock)
    containerizer.agent = agent
    cluster.agents.append(agent)
    cluster.containerizers.append(containerizer)
    cluster.connect(agent)
    return agent


def allocate_periodically(cluster: Cluster, interval: float = 1.0) -> None:
    """Offer free resources every ``interval`` as the master service does (the bare cluster only
    allocates after events)."""
    if getattr(cluster, "allocation_loop", None) is not None:
        return

    def loop() -> None:
        cluster.master.allocate()
        cluster.allocation_loop = cluster.clock.callLater(interval, loop)  # type: ignore[attr-defined]

    cluster.allocation_loop = cluster.clock.callLater(interval, loop)  # type: ignore[attr-defined]


class ScriptedProber:
    """Answers probes from rules: ``healthy(host, port)`` for HTTP/TCP, ``ready(host, port)`` for
    readiness (any HTTP probe with ``keep_body`` or on a readiness port). COMMAND and MESOS_* checks
    are not probed: the test acts as the agent's executor (:meth:`ServiceHarness.report_health`)."""

    def __init__(self) -> None:
        self.healthy = lambda host, port: True
        self.ready = lambda host, port: True
        self.calls: list[tuple[str, str, Any]] = []

    def http(self, host: str, port: int, path: str, https: bool, timeout: float,
             keep_body: bool = False) -> defer.Deferred:
        self.calls.append(("http", host, port))
        ok = self.healthy(host, port)
        return defer.succeed(Result(ok, None if ok else "HTTP 503", 200 if ok else 503, "ok" if ok else "no"))

    def tcp(self, host: str, port: int, timeout: float) -> defer.Deferred:
        self.calls.append(("tcp", host, port))
        ok = self.healthy(host, port)
        return defer.succeed(Result(ok, None if ok else "connection refused"))



def config(**overrides: Any) -> Any:
    values = {"mesos_user": "nobody", **overrides}
    return flaglib.defaults(plugin.FLAGS, **values)


class ServiceHarness:
    """A cluster with named agents, the framework hosted on it, and an API client."""

    def __init__(self, hosts: tuple[str, ...] = ("agent-a", "agent-b"), resources: str = RESOURCES,
                 store: MemoryStateStore | None = None, cluster: Cluster | None = None,
                 attributes: dict[str, dict[str, Any]] | None = None, **flags: Any):
        if cluster is None:
            cluster = Cluster(agents=0)
            for index, host in enumerate(hosts):
                add_agent(cluster, host, resources, (attributes or {}).get(host), port=5051 + index)
            cluster.settle()
        allocate_periodically(cluster)
        self.cluster = cluster
        self.clock = cluster.clock
        self.store = store if store is not None else MemoryStateStore()
        self.host = ClusterHost(cluster, "service", store=self.store)
        self.prober = ScriptedProber()
        self.config = config(**flags)
        self.framework = ServiceFramework(self.host, self.config, prober=self.prober)
        self.client = Client(self.host.router, self.clock)
        self.state = self.framework.state

    def start(self) -> ServiceHarness:
        self.framework.startService()
        self.settle()
        return self

    def stop(self) -> None:
        if self.framework.running:
            self.framework.stopService()
            self.settle()

    def settle(self) -> None:
        self.cluster.settle(rounds=2000)

    def advance(self, seconds: float, step: float = 1.0) -> None:
        remaining = seconds
        while remaining > 0:
            delta = min(step, remaining)
            self.clock.advance(delta)
            self.settle()
            remaining -= delta

    def until(self, predicate: Any, limit: float = 120.0, step: float = 1.0) -> None:
        """Advance the clock until ``predicate()`` holds; fail after ``limit`` simulated seconds."""
        waited = 0.0
        self.settle()
        while not predicate():
            if waited >= limit:
                raise AssertionError(f"still not true after {limit}s of simulated time")
            self.advance(step, step)
            waited += step

    # -- API -----------------------------------------------------------------------------------

    def call(self, method: str, path: str, data: Any = None, headers: dict[str, str] | None = None) -> Reply:
        raw = b"" if data is None else (data if isinstance(data, bytes) else json.dumps(data).encode())
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return self.client.request(method, path, raw, hdrs)

    def get(self, path: str) -> Any:
        reply = self.call("GET", path)
        assert reply.code == 200, (path, reply.code, reply.body)
        return reply.json()

    def create(self, app: dict[str, Any]) -> Reply:
        reply = self.call("POST", "/v2/apps", app)
        assert reply.code == 201, (reply.code, reply.body)
        return reply

    # -- views ---------------------------------------------------------------------------------

    def instances(self, app_id: str) -> list[Any]:
        return [i for i in self.state.instances.of_app(app_id) if not i.gone]

    def running(self, app_id: str) -> list[Any]:
        return [i for i in self.instances(app_id) if i.running]

    def deployments(self) -> list[Any]:
        return list(self.state.deployments.values())

    def executor_of(self, task_id: str) -> Any:
        """The fake executor running ``task_id`` (the command executor's ID is the task's)."""
        (executor,) = [e for c in self.cluster.containerizers for e in c.by_executor(task_id)]
        return executor

    def report_health(self, task_id: str, healthy: bool, message: str | None = None) -> None:
        """What the command executor sends when the task's health check passes or fails."""
        self.executor_of(task_id).update(task_id, "TASK_RUNNING", message, healthy=healthy)
        self.settle()


class StreamReader:
    """An open HTTP connection to an endpoint that streams (``/v2/events``)."""

    def __init__(self, harness: ServiceHarness, target: str, headers: dict[str, str] | None = None):
        self.harness = harness
        self.channel = harness.client.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {"Accept": "text/event-stream"}).items())
        self.channel.dataReceived(f"GET {target} HTTP/1.1\r\nHost: service\r\n{extra}\r\n".encode())
        harness.settle()

    def raw(self) -> bytes:
        return self.transport.value()

    def events(self) -> list[dict[str, Any]]:
        """Every ``data:`` line so far, decoded (chunked framing skipped)."""
        out = []
        for line in self.raw().split(b"\n"):
            if line.startswith(b"data: "):
                out.append(json.loads(line[len(b"data: "):]))
        return out

    def types(self) -> list[str]:
        return [e["eventType"] for e in self.events()]

    def close(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.channel.connectionLost(Failure(ConnectionDone()))
        self.harness.settle()
