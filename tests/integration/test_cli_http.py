"""The ``mesostw`` HTTP commands (state, ps, kill, cat, tail) against real HTTP.

The commands block (urllib), so they run in a thread against twisted.web sites listening on
127.0.0.1 that serve canned Mesos-shaped JSON for a master and an agent.
"""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest
from twisted.web import http as twhttp
from twisted.web import resource, server

from mesostw.cli import main, sandbox

SANDBOX = "/var/lib/mesos/slaves/S1/frameworks/F1/executors/web-1/runs/C1"
OLD_SANDBOX = "/var/lib/mesos/slaves/S1/frameworks/F0/executors/batch-1/runs/C0"


# -- a canned cluster over real HTTP ---------------------------------------------------

class CannedEndpoints(resource.Resource):
    """Answers each path with canned JSON, or with a handler ``(args) -> (code, body)``; records requests."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, Any] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def render(self, request: server.Request) -> bytes:
        path = request.path.decode()
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.requests.append((request.method.decode(), path, args))
        route = self.routes.get(path)
        if route is None:
            code, body = 404, {"message": f"No such endpoint: {path}"}
        elif callable(route):
            code, body = route(args)
        else:
            code, body = 200, route
        request.setResponseCode(code)
        if isinstance(body, bytes):
            return body
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode()

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]


class TrackedChannel(twhttp.HTTPChannel):
    """An HTTP channel that tells its site when it closes, so tests can wait for clean sockets."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.closed: defer.Deferred = defer.Deferred()
        self.site.channels.append(self.closed)

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self.closed.callback(None)


class TrackingSite(server.Site):
    protocol = TrackedChannel

    def __init__(self, root: resource.Resource) -> None:
        super().__init__(root)
        self.channels: list[defer.Deferred] = []


class SandboxFiles:
    """The agent's ``/files/read`` over in-memory files, with Mesos's offset and length rules."""

    MAX_READ = 64 * 1024

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def read(self, args: dict[str, str]) -> tuple[int, Any]:
        content = self.files.get(args.get("path", ""))
        if content is None:
            return 404, {"message": "No such file or directory"}
        size = len(content)
        offset = int(args.get("offset", "-1"))
        if offset == -1 or offset >= size:
            return 200, {"offset": size, "data": ""}
        length = int(args.get("length", str(size - offset)))
        data = content[offset:offset + min(length, self.MAX_READ)]
        return 200, {"offset": offset, "data": data.decode("utf-8", "replace")}


def task_json(task_id: str, framework_id: str, agent_id: str, state: str = "TASK_RUNNING",
              cpus: float = 0.5, mem: float = 128) -> dict[str, Any]:
    return {"id": task_id, "name": task_id, "framework_id": framework_id, "slave_id": agent_id, "state": state,
            "executor_id": "", "resources": {"cpus": cpus, "mem": mem, "disk": 0, "gpus": 0}, "statuses": []}


class CLITestCase(unittest.TestCase):
    """Starts a master site and an agent site on loopback and runs ``mesostw`` against them."""

    def setUp(self) -> None:
        self.master = CannedEndpoints()
        self.agent = CannedEndpoints()
        self.files = SandboxFiles()
        self.agent.routes["/files/read"] = self.files.read
        self.master_port = self.listen(self.master)
        self.agent_port = self.listen(self.agent)
        self.address = f"127.0.0.1:{self.master_port}"
        self.master.routes["/master/state"] = self.cluster_state()
        self.agent.routes["/slave(1)/state"] = self.agent_state()
        self.files.files[f"{SANDBOX}/stdout"] = b"one\ntwo\nthree\n"
        self.files.files[f"{OLD_SANDBOX}/stderr"] = b"batch went wrong\n"

    def listen(self, root: resource.Resource) -> int:
        site = TrackingSite(root)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")

        def close() -> defer.Deferred:
            d = defer.maybeDeferred(port.stopListening)
            d.addCallback(lambda _: defer.gatherResults(site.channels))
            return d

        self.addCleanup(close)
        return port.getHost().port

    def cluster_state(self) -> dict[str, Any]:
        return {
            "id": "M1", "pid": f"master@127.0.0.1:{self.master_port}", "hostname": "master-host",
            "slaves": [{"id": "S1", "pid": f"slave(1)@127.0.0.1:{self.agent_port}", "hostname": "agent-one"},
                       {"id": "S2", "pid": "slave(1)@127.0.0.1:1", "hostname": "agent-two"}],
            "frameworks": [
                {"id": "F1", "name": "marathon", "active": True,
                 "tasks": [task_json("web-1", "F1", "S1"), task_json("web-2", "F1", "S2", "TASK_STAGING", 1, 64)],
                 "completed_tasks": [task_json("web-0", "F1", "S1", "TASK_KILLED")]},
                {"id": "F2", "name": "chronos", "active": True,
                 "tasks": [task_json("job-1", "F2", "S9", cpus=0.25, mem=32)], "completed_tasks": []},
            ],
            "completed_frameworks": [
                {"id": "F0", "name": "batch", "tasks": [],
                 "completed_tasks": [task_json("batch-1", "F0", "S1", "TASK_FAILED", 2, 2048)]},
            ],
        }

    def agent_state(self) -> dict[str, Any]:
        return {
            "id": "S1", "pid": f"slave(1)@127.0.0.1:{self.agent_port}",
            "frameworks": [{"id": "F1", "executors": [
                {"id": "web-1", "directory": SANDBOX, "tasks": [{"id": "web-1"}], "queued_tasks": [],
                 "completed_tasks": []}], "completed_executors": []}],
            "completed_frameworks": [{"id": "F0", "executors": [], "completed_executors": [
                {"id": "batch-1", "directory": OLD_SANDBOX, "tasks": [], "queued_tasks": [],
                 "completed_tasks": [{"id": "batch-1"}]}]}],
        }

    def mesostw(self, *argv: str, master: bool = True) -> defer.Deferred:
        """Run the command in a thread; fires with (exit code, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        args = list(argv) + ([f"--master={self.address}"] if master else [])
        d = threads.deferToThread(main.run, args, out, err)
        d.addCallback(lambda code: (code, out.getvalue(), err.getvalue()))
        return d


def closed_port() -> int:
    """A loopback port nothing listens on."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


# -- state -----------------------------------------------------------------------------

class StateTests(CLITestCase):
    @defer.inlineCallbacks
    def test_state_prints_indented_json(self) -> Any:
        """'state' prints /master/state as indented JSON ending in a newline."""
        code, out, err = yield self.mesostw("state")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out), self.cluster_state())
        self.assertTrue(out.startswith('{\n  "id": "M1"'))
        self.assertTrue(out.endswith("}\n"))

    @defer.inlineCallbacks
    def test_master_from_environment(self) -> Any:
        """Without --master, MESOS_MASTER (in either form) names the master."""
        self.patch(os, "environ", {**os.environ, "MESOS_MASTER": f"http://{self.address}"})
        code, out, _ = yield self.mesostw("state", master=False)
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out)["id"], "M1")

    def test_unreachable_master(self) -> None:
        """An unreachable master is one line naming its address and exit status 1, without a traceback."""
        port = closed_port()
        out, err = io.StringIO(), io.StringIO()
        code = main.run(["state", f"--master=127.0.0.1:{port}"], out, err)
        self.assertEqual(code, 1)
        self.assertEqual(err.getvalue(), f"mesostw state: cannot reach http://127.0.0.1:{port}: Connection refused\n")

    @defer.inlineCallbacks
    def test_error_message_from_json_body(self) -> Any:
        """An HTTP error with a JSON {"message"} body prints that message."""
        self.master.routes["/master/state"] = lambda args: (503, {"message": "Not the leading master"})
        code, out, err = yield self.mesostw("state")
        self.assertEqual((code, out, err), (1, "", "mesostw state: Not the leading master\n"))

    @defer.inlineCallbacks
    def test_non_json_answer(self) -> Any:
        """An answer that is not JSON is reported, not a traceback."""
        self.master.routes["/master/state"] = lambda args: (200, b"<html>proxy</html>")
        code, _, err = yield self.mesostw("state")
        self.assertEqual(code, 1)
        self.assertEqual(err, f"mesostw state: http://{self.address}/master/state did not answer with JSON\n")


# -- ps and kill -------------------------------------------------------------------------

class PsTests(CLITestCase):
    @defer.inlineCallbacks
    def test_active_tasks_table(self) -> Any:
        """ps lists active tasks with framework name, agent hostname, state, cpus and mem, aligned."""
        code, out, err = yield self.mesostw("ps")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out.splitlines(), [
            "FRAMEWORK  TASK   AGENT      STATE         CPUS  MEM",
            "marathon   web-1  agent-one  TASK_RUNNING  0.5   128",
            "marathon   web-2  agent-two  TASK_STAGING  1     64",
            "chronos    job-1  S9         TASK_RUNNING  0.25  32",
        ])

    @defer.inlineCallbacks
    def test_all_adds_completed_tasks(self) -> Any:
        """ps --all adds completed tasks and the tasks of completed frameworks."""
        code, out, _ = yield self.mesostw("ps", "--all")
        self.assertEqual(code, 0)
        rows = [line.split()[:4] for line in out.splitlines()[1:]]
        self.assertEqual(rows, [
            ["marathon", "web-1", "agent-one", "TASK_RUNNING"],
            ["marathon", "web-2", "agent-two", "TASK_STAGING"],
            ["chronos", "job-1", "S9", "TASK_RUNNING"],
            ["marathon", "web-0", "agent-one", "TASK_KILLED"],
            ["batch", "batch-1", "agent-one", "TASK_FAILED"],
        ])

    @defer.inlineCallbacks
    def test_empty_cluster(self) -> Any:
        """ps on a cluster without tasks prints only the header."""
        self.master.routes["/master/state"] = {"slaves": [], "frameworks": [], "completed_frameworks": []}
        code, out, _ = yield self.mesostw("ps", "-a")
        self.assertEqual((code, out), (0, "FRAMEWORK  TASK  AGENT  STATE  CPUS  MEM\n"))


class KillTests(CLITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.master.routes["/master/kill"] = lambda args: (202, b"")

    def kills(self) -> list[dict[str, str]]:
        return [args for method, path, args in self.master.requests if path == "/master/kill"]

    @defer.inlineCallbacks
    def test_kill_finds_the_framework(self) -> Any:
        """kill looks the task's framework up in /master/state and POSTs both IDs to /master/kill."""
        code, out, err = yield self.mesostw("kill", "job-1")
        self.assertEqual((code, out, err), (0, "Killing task job-1\n", ""))
        self.assertEqual(self.master.requests[-1], ("POST", "/master/kill", {"frameworkId": "F2", "taskId": "job-1"}))

    @defer.inlineCallbacks
    def test_kill_with_framework_skips_lookup(self) -> Any:
        """kill --framework posts directly, without reading the master's state."""
        code, _, _ = yield self.mesostw("kill", "web-1", "--framework", "F1")
        self.assertEqual(code, 0)
        self.assertEqual(self.master.paths(), ["/master/kill"])
        self.assertEqual(self.kills(), [{"frameworkId": "F1", "taskId": "web-1"}])

    @defer.inlineCallbacks
    def test_unknown_task(self) -> Any:
        """Killing a task the master does not know fails with exit 1 and posts nothing."""
        code, _, err = yield self.mesostw("kill", "nope")
        self.assertEqual((code, err), (1, "mesostw kill: no task 'nope' is known to the master\n"))
        self.assertEqual(self.kills(), [])

    @defer.inlineCallbacks
    def test_terminated_task(self) -> Any:
        """Killing a task that already ended says so."""
        code, _, err = yield self.mesostw("kill", "web-0")
        self.assertEqual((code, err), (1, "mesostw kill: task 'web-0' has already terminated (TASK_KILLED)\n"))

    @defer.inlineCallbacks
    def test_ambiguous_task(self) -> Any:
        """A task ID active in two frameworks needs --framework."""
        state = self.cluster_state()
        state["frameworks"][1]["tasks"].append(task_json("web-1", "F2", "S1"))
        self.master.routes["/master/state"] = state
        code, _, err = yield self.mesostw("kill", "web-1")
        self.assertEqual(code, 1)
        self.assertIn("task ID 'web-1' is ambiguous: it exists in frameworks F1, F2; choose one with --framework", err)
        self.assertEqual(self.kills(), [])

    @defer.inlineCallbacks
    def test_master_refusal_message(self) -> Any:
        """A 404 or 409 from /master/kill prints the master's message and exits 1."""
        for status, message in ((404, "Task x of framework F1 is not known"),
                                (409, "Agent S2 of task web-2 is not connected")):
            self.master.routes["/master/kill"] = lambda args, s=status, m=message: (s, {"message": m})
            code, out, err = yield self.mesostw("kill", "web-2", "--framework", "F1")
            self.assertEqual((code, out, err), (1, "", f"mesostw kill: {message}\n"))


# -- cat and tail ------------------------------------------------------------------------

class CatTests(CLITestCase):
    @defer.inlineCallbacks
    def test_cat_prints_stdout_exactly(self) -> Any:
        """cat reads the task's stdout from its agent's sandbox in chunks and prints it unchanged."""
        self.patch(sandbox, "CHUNK", 5)
        content = "alpha\nbeta\ngamma without newline"
        self.files.files[f"{SANDBOX}/stdout"] = content.encode()
        code, out, err = yield self.mesostw("cat", "web-1")
        self.assertEqual((code, out, err), (0, content, ""))
        reads = [args for _, path, args in self.agent.requests if path == "/files/read"]
        self.assertEqual({r["path"] for r in reads}, {f"{SANDBOX}/stdout"})
        self.assertEqual([r["offset"] for r in reads], ["-1"] + [str(n) for n in range(0, len(content), 5)])
        self.assertIn("/slave(1)/state", self.agent.paths())

    @defer.inlineCallbacks
    def test_cat_completed_task_in_completed_framework(self) -> Any:
        """cat finds a completed task's sandbox among completed frameworks and executors."""
        code, out, _ = yield self.mesostw("cat", "batch-1", "stderr")
        self.assertEqual((code, out), (0, "batch went wrong\n"))

    @defer.inlineCallbacks
    def test_cat_empty_file(self) -> Any:
        """cat of an empty file prints nothing and succeeds."""
        self.files.files[f"{SANDBOX}/stderr"] = b""
        code, out, _ = yield self.mesostw("cat", "web-1", "stderr")
        self.assertEqual((code, out), (0, ""))

    @defer.inlineCallbacks
    def test_missing_file(self) -> Any:
        """A 404 from /files/read is reported as 'No such file' with exit 1."""
        code, out, err = yield self.mesostw("cat", "web-1", "nope.log")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, "mesostw cat: No such file: 'nope.log' in the sandbox of task 'web-1'\n")

    @defer.inlineCallbacks
    def test_unknown_task(self) -> Any:
        """cat of a task the master does not know fails without contacting any agent."""
        code, _, err = yield self.mesostw("cat", "ghost")
        self.assertEqual((code, err), (1, "mesostw cat: no task 'ghost' is known to the master\n"))
        self.assertEqual(self.agent.requests, [])

    @defer.inlineCallbacks
    def test_framework_filter(self) -> Any:
        """--framework restricts the lookup to one framework."""
        code, _, err = yield self.mesostw("cat", "web-1", "--framework", "F2")
        self.assertEqual((code, err), (1, "mesostw cat: no task 'web-1' in framework 'F2' is known to the master\n"))

    @defer.inlineCallbacks
    def test_unregistered_agent(self) -> Any:
        """A task whose agent is not among the master's slaves is an error naming the agent."""
        code, _, err = yield self.mesostw("cat", "job-1")
        self.assertEqual((code, err), (1, "mesostw cat: agent 'S9' is not registered with the master\n"))

    @defer.inlineCallbacks
    def test_unreachable_agent(self) -> Any:
        """An agent that does not answer is reported by address."""
        code, _, err = yield self.mesostw("cat", "web-2")
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith("mesostw cat: cannot reach http://127.0.0.1:1: "), err)

    @defer.inlineCallbacks
    def test_sandbox_gone_from_agent(self) -> Any:
        """A task the agent no longer knows (garbage-collected sandbox) is a clear error."""
        self.agent.routes["/slave(1)/state"] = {"frameworks": [], "completed_frameworks": []}
        code, _, err = yield self.mesostw("cat", "web-1")
        self.assertEqual(code, 1)
        self.assertIn("the agent has no sandbox for task 'web-1'", err)


class TailTests(CLITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.patch(sandbox, "CHUNK", 7)
        self.lines = [f"line {n}\n" for n in range(1, 31)]
        self.files.files[f"{SANDBOX}/stdout"] = "".join(self.lines).encode()

    @defer.inlineCallbacks
    def test_last_ten_lines(self) -> Any:
        """tail prints the last 10 lines, reading backwards from the end only as far as needed."""
        code, out, _ = yield self.mesostw("tail", "web-1")
        self.assertEqual((code, out), (0, "".join(self.lines[-10:])))
        offsets = [int(args["offset"]) for _, path, args in self.agent.requests if path == "/files/read"]
        self.assertGreater(min(o for o in offsets if o >= 0), 0)

    @defer.inlineCallbacks
    def test_n_lines_without_final_newline(self) -> Any:
        """tail -n 2 of a file without a final newline prints its last two lines as they are."""
        self.files.files[f"{SANDBOX}/stdout"] = b"a\nbb\nccc"
        code, out, _ = yield self.mesostw("tail", "web-1", "-n", "2")
        self.assertEqual((code, out), (0, "bb\nccc"))

    @defer.inlineCallbacks
    def test_short_file_and_zero_lines(self) -> Any:
        """tail of a file shorter than N prints all of it; -n 0 prints nothing."""
        code, out, _ = yield self.mesostw("tail", "web-1", "-n", "100")
        self.assertEqual((code, out), (0, "".join(self.lines)))
        code, out, _ = yield self.mesostw("tail", "web-1", "-n", "0")
        self.assertEqual((code, out), (0, ""))

    @defer.inlineCallbacks
    def test_follow_prints_appended_data_until_interrupted(self) -> Any:
        """tail -f prints what is appended (and copes with truncation) until Ctrl-C, then exits 0."""
        path = f"{SANDBOX}/stdout"
        steps: list[Callable[[], None]] = [
            lambda: None,
            lambda: self.files.files.__setitem__(path, self.files.files[path] + b"line 31\nline 32\n"),
            lambda: self.files.files.__setitem__(path, b"fresh\n"),
        ]
        delays: list[float] = []

        def fake_sleep(seconds: float) -> None:
            delays.append(seconds)
            if not steps:
                raise KeyboardInterrupt()
            steps.pop(0)()

        self.patch(sandbox, "sleep", fake_sleep)
        code, out, err = yield self.mesostw("tail", "web-1", "-n", "1", "--follow")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, "line 30\nline 31\nline 32\nfresh\n")
        self.assertEqual(delays, [0.5] * 4)

    @defer.inlineCallbacks
    def test_missing_file(self) -> Any:
        """tail of a missing file reports 'No such file'."""
        code, _, err = yield self.mesostw("tail", "web-1", "gone")
        self.assertEqual((code, err), (1, "mesostw tail: No such file: 'gone' in the sandbox of task 'web-1'\n"))

    def test_last_lines(self) -> None:
        """last_lines follows tail -n: a final newline ends a line and is kept."""
        self.assertEqual(sandbox.last_lines("a\nb\nc\n", 2), "b\nc\n")
        self.assertEqual(sandbox.last_lines("a\nb\nc", 1), "c")
        self.assertEqual(sandbox.last_lines("a\n\n\n", 2), "\n\n")
        self.assertEqual(sandbox.last_lines("a\nb\n", 5), "a\nb\n")
        self.assertEqual(sandbox.last_lines("", 3), "")
