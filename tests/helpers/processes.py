"""Real daemons for integration tests: twistd masters and agents on loopback, stopped by PID.

Everything waits by polling with a deadline on the test's reactor; nothing
sleeps. Every process a test starts is stopped by it, including executors
(which run in sessions of their own so that they outlive an agent): they are
found by their working directory below the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import psutil
from twisted.internet import defer, reactor, task
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")
MESOSTW = os.path.join(BIN, "mesostw")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESOS_", "LIBPROCESS_"))}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition") -> defer.Deferred:
    """Poll ``predicate`` (which may return a Deferred) until it gives a truthy value."""
    deadline = time.monotonic() + timeout

    @defer.inlineCallbacks
    def loop() -> Any:
        last_error = None
        while True:
            try:
                value = yield defer.maybeDeferred(predicate)
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                value, last_error = None, exc
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                     + (f" (last error: {last_error!r})" if last_error else ""))
            yield task.deferLater(reactor, interval, lambda: None)

    return loop()


_agent = Agent(reactor)


@defer.inlineCallbacks
def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """(code, body bytes, headers) of one HTTP request."""
    from io import BytesIO

    from twisted.web.client import FileBodyProducer

    producer = FileBodyProducer(BytesIO(body)) if body is not None else None
    hdrs = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
    response = yield _agent.request(method.encode(), url.encode(), hdrs, producer)
    data = yield readBody(response)
    return response.code, data, response.headers


@defer.inlineCallbacks
def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    code, data, _ = yield http("GET", url, headers=headers)
    if code != 200:
        raise AssertionError(f"GET {url} answered {code}: {data[:300]!r}")
    return json.loads(data)


#: Runs argv[1:] with SIGINT at its default: a process started from a shell's background job inherits
#: SIGINT ignored, and then Ctrl-C (SIGINT) would not reach the daemon at all.
WITH_SIGINT = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                                     "os.execv(sys.argv[1], sys.argv[1:])"]


class Daemon:
    """One ``twistd -n`` process (``interruptible``: with SIGINT handled whatever the test's parent ignores)."""

    def __init__(self, plugin: str, args: list[str], log_path: str, env: dict[str, str] | None = None,
                 interruptible: bool = False, prefix: list[str] | None = None):
        self.plugin = plugin
        self.args = args
        self.log_path = log_path
        self.env = environment(env)
        self.interruptible = interruptible
        #: what runs twistd (e.g. ``ip netns exec NS``, which execs it: the pid stays twistd's)
        self.prefix = prefix or []
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Daemon:
        log = open(self.log_path, "ab")
        prefix = [*self.prefix, *(WITH_SIGINT if self.interruptible else [])]
        self.process = subprocess.Popen([*prefix, TWISTD, "-n", "--pidfile=", self.plugin, *self.args], stdout=log,
                                        stderr=subprocess.STDOUT, env=self.env, cwd=os.path.dirname(self.log_path))
        log.close()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


def kill_processes_under(directory: str) -> int:
    """SIGKILL every process whose working directory is below ``directory`` (executors, tasks)."""
    directory = os.path.realpath(directory)
    killed = 0
    for proc in psutil.process_iter(["pid"]):
        try:
            cwd = proc.cwd()
        except (psutil.Error, OSError):
            continue
        if cwd == directory or cwd.startswith(directory + os.sep):
            try:
                proc.kill()
                killed += 1
            except psutil.Error:
                pass
    return killed


class ProcessCluster:
    """A master and agents as real processes under one temporary directory."""

    def __init__(self, testcase: Any, agents: int = 2, master_args: list[str] | None = None,
                 agent_args: list[str] | None = None, resources: str = "cpus:4;mem:4096;disk:4096",
                 agent_ips: list[str] | None = None):
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="mesostw-test-"))
        self.master_port = free_port()
        self.master_address = f"127.0.0.1:{self.master_port}"
        self.master = Daemon("mesos-master", [f"--port={self.master_port}", *(master_args or [])],
                             os.path.join(self.base, "master.log"))
        self.agents: list[Daemon] = []
        self.agent_args = agent_args or []
        self.resources = resources
        self.agent_count = agents
        #: each agent's --ip (and so its hostname), by index: agents on 127.0.0.1, 127.0.0.2 ... look like hosts
        self.agent_ips = agent_ips or []
        #: headers for the cluster's own HTTP requests (e.g. HTTP Basic credentials)
        self.http_headers: dict[str, str] = {}
        testcase.addCleanup(self.stop)

    def agent_daemon(self, index: int) -> Daemon:
        work_dir = os.path.join(self.base, f"agent{index}")
        ip = [f"--ip={self.agent_ips[index]}"] if index < len(self.agent_ips) else []
        return Daemon("mesos-slave", [f"--master={self.master_address}", *ip, f"--port={free_port()}",
                                      f"--work_dir={work_dir}", f"--resources={self.resources}", *self.agent_args],
                      os.path.join(self.base, f"agent{index}.log"))

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.master.start()
        for index in range(self.agent_count):
            self.agents.append(self.agent_daemon(index).start())
        yield self.wait_agents(self.agent_count)
        return self

    def url(self, path: str) -> str:
        return f"http://{self.master_address}{path}"

    def agent_url(self, index: int, path: str) -> str:
        """``path`` on the ``index``th agent's HTTP port."""
        port = next(arg.split("=", 1)[1] for arg in self.agents[index].args if arg.startswith("--port="))
        ip = self.agent_ips[index] if index < len(self.agent_ips) else "127.0.0.1"
        return f"http://{ip}:{port}{path}"

    @defer.inlineCallbacks
    def command_executors(self) -> Any:
        """How many command executors the agents started, by kind: {"native": n, "python": m}."""
        counts = {"native": 0, "python": 0}
        for index in range(len(self.agents)):
            metrics = yield get_json(self.agent_url(index, "/metrics/snapshot"), self.http_headers)
            for kind in counts:
                counts[kind] += int(metrics[f"slave/command_executors_{kind}"])
        return counts

    def state(self) -> defer.Deferred:
        return get_json(self.url("/master/state"), self.http_headers)

    def wait_agents(self, count: int, timeout: float = 30.0) -> defer.Deferred:
        def registered() -> defer.Deferred:
            return self.state().addCallback(lambda s: s["activated_slaves"] == count)

        return wait_for(registered, timeout, what=f"{count} registered agents")

    def stop(self) -> None:
        for daemon in [*self.agents, self.master]:
            daemon.stop()
        kill_processes_under(self.base)
        if not os.environ.get("MESOSTW_KEEP_TEST_DIRS"):
            shutil.rmtree(self.base, ignore_errors=True)
