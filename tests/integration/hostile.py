"""A cluster configured as the README's security section says, and the tenants that attack it.

Real twistd daemons on loopback. Tenants: ``alice`` (the victim; her tasks run as ``nobody``),
``mallory`` (the attacker, with valid credentials of her own; her tasks run as ``daemon``), ``ops``
(the operator) and ``agent`` (the agents' principal).
"""

from __future__ import annotations

import base64
import json
import os
import socket
from typing import Any

from twisted.internet import defer, reactor

from mesostw.auth.credentials import Credential
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.processes import ProcessCluster, get_json, wait_for

SECRETS = {"ops": "ops-secret", "agent": "agent-secret", "alice": "alice-secret", "mallory": "mallory-secret",
           "rogue-agent": "rogue-secret"}
CREDENTIALS = {"credentials": [{"principal": p, "secret": s} for p, s in SECRETS.items()]}
USERS = {"alice": "nobody", "mallory": "daemon"}
ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": {"values": ["alice", "mallory", "ops"]}, "roles": {"type": "ANY"}}],
    "run_tasks": [{"principals": {"values": [p]}, "users": {"values": [u]}} for p, u in USERS.items()],
    "teardown_frameworks": [
        {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
        *({"principals": {"values": [p]}, "framework_principals": {"values": [p]}} for p in USERS)],
    # rogue-agent: a second agent host, allowed to register agents of its own (and then compromised)
    "register_agents": [{"principals": {"values": ["agent", "rogue-agent"]}, "agents": {"type": "ANY"}}],
    "access_sandboxes": [
        {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
        *({"principals": {"values": [p]}, "users": {"values": [u]}} for p, u in USERS.items())],
}


def basic(principal: str, secret: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{secret or SECRETS[principal]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class HostileCluster(ProcessCluster):
    """A master and agents with every security flag of the README's example."""

    def __init__(self, testcase: Any, agents: int = 1, master_args: list[str] | None = None,
                 agent_args: list[str] | None = None):
        super().__init__(testcase, agents=agents)
        credentials = self.write("credentials.json", json.dumps(CREDENTIALS))
        acls = self.write("acls.json", json.dumps(ACLS))
        agent_credential = self.write("agent-credential", "agent agent-secret\n")
        self.master.args += ["--authenticate_frameworks", "--authenticate_agents", "--authenticate_http_readonly",
                             "--authenticate_http_readwrite", f"--credentials={credentials}", f"--acls={acls}",
                             *(master_args or [])]
        self.agent_args = [f"--credential=file://{agent_credential}", "--authenticate_http_readonly",
                           f"--http_credentials={credentials}", f"--acls={acls}", *(agent_args or [])]
        self.http_headers = basic("ops")

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.base, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    @property
    def agent_address(self) -> tuple[str, int]:
        port = next(int(a.split("=", 1)[1]) for a in self.agents[0].args if a.startswith("--port="))
        return "127.0.0.1", port

    def agent_url(self, path: str) -> str:
        host, port = self.agent_address
        return f"http://{host}:{port}{path}"

    def agent_state(self) -> defer.Deferred:
        return get_json(self.agent_url("/slave(1)/state"), basic("ops"))

    def framework(self, testcase: Any, scheduler: Any, principal: str, **info: Any) -> MesosSchedulerDriver:
        """A PB framework of ``principal``, authenticated with its own credential."""
        info.setdefault("user", USERS.get(principal, "nobody"))
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(name=f"{principal}-framework", **info),
                                      self.master_address, reactor=reactor, backoff=0.2,
                                      credential=Credential(principal, SECRETS[principal]))
        testcase.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        return driver

    @defer.inlineCallbacks
    def running_task(self, testcase: Any, principal: str, task_id: str, command: str = "sleep 300") -> Any:
        """Start a task of ``principal`` and wait until it runs; returns (scheduler, executor state)."""
        from tests.helpers.cluster import command_task
        from tests.integration.test_core_cluster import LaunchingScheduler

        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task(task_id, command)]
        scheduler.driver = self.framework(testcase, scheduler, principal)
        yield wait_for(lambda: "TASK_RUNNING" in scheduler.states(task_id), 60, what=f"{task_id} running")
        state = yield self.agent_state()
        executor = next(e for f in state["frameworks"] for e in f["executors"] if e["id"] == task_id)
        return scheduler, executor

    def master_task(self, task_id: str) -> defer.Deferred:
        """The master's view of a task (from /master/tasks, as ops)."""
        def find(tasks: dict[str, Any]) -> dict[str, Any] | None:
            return next((t for t in tasks["tasks"] if t["id"] == task_id), None)

        return get_json(self.url(f"/master/tasks?task_id={task_id}"), basic("ops")).addCallback(find)


@defer.inlineCallbacks
def pb_root(address: str, principal: str | None = None) -> Any:
    """A PB connection to ``address`` (host:port), authenticated as ``principal`` when given; the
    caller disconnects it (``root.broker.transport.loseConnection()``)."""
    from mesostw.auth.client import authenticate
    from mesostw.wire.pb import ClientFactory

    host, port = address.split(":")
    factory = ClientFactory()
    reactor.connectTCP(host, int(port), factory)
    root = yield factory.getRootObject()
    if principal is not None:
        yield authenticate(root, Credential(principal, SECRETS[principal]))
    return root


def raw_exchange(address: tuple[str, int], data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new connection and read until the peer closes (or ``timeout``); blocking."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)
