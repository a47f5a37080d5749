"""The ``mesostw`` command line.

The HTTP commands run in-process (in a thread, as they block) against twisted.web sites on
127.0.0.1 that serve canned Mesos-shaped JSON for a master and an agent. ``execute`` is tested
through its scheduler with a fake driver and a ``task.Clock``; its real end-to-end run is an
integration test.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest
from twisted.web import http as twhttp
from twisted.web import resource, server

from mesostw.cli import execute, http, main, sandbox
from mesostw.cli.errors import CLIError, UsageError
from mesostw.model.resources import Resources
from mesostw.model.task import TERMINAL_STATES, Offer, TaskInfo, TaskStatus

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


# -- the command line itself ----------------------------------------------------------

class CommandLineTests(unittest.TestCase):
    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return main.run(list(argv), out, err), out.getvalue(), err.getvalue()

    def test_no_command_is_a_usage_error(self) -> None:
        """Without a command, mesostw prints one usage line to stderr and exits 2."""
        code, out, err = self.run_cli()
        self.assertEqual((code, out), (2, ""))
        self.assertTrue(err.startswith("mesostw: the following arguments are required: COMMAND"), err)
        self.assertEqual(err.count("\n"), 1)

    def test_unknown_option_names_the_command(self) -> None:
        """An unknown option is reported by the subcommand it was given to, with exit status 2."""
        code, _, err = self.run_cli("ps", "--bogus")
        self.assertEqual(code, 2)
        self.assertEqual(err, "mesostw ps: unrecognized arguments: --bogus (see 'mesostw ps --help')\n")

    def test_missing_required_option(self) -> None:
        """execute without --command is a usage error of 'mesostw execute'."""
        code, _, err = self.run_cli("execute", "--name", "x")
        self.assertEqual(code, 2)
        self.assertTrue(err.startswith("mesostw execute: the following arguments are required: --command"), err)

    def test_bad_resources_are_a_usage_error(self) -> None:
        """An unparsable --resources is rejected before anything connects."""
        code, _, err = self.run_cli("execute", "--name", "x", "--command", "true", "--resources", "cpus:lots")
        self.assertEqual(code, 2)
        self.assertIn("mesostw execute: argument --resources: bad resource 'cpus:lots'", err)

    def test_help_exits_zero(self) -> None:
        """Every subcommand's --help prints its usage to stdout and exits 0."""
        for command in ("execute", "state", "ps", "kill", "cat", "tail"):
            printed = io.StringIO()
            self.patch(sys, "stdout", printed)
            code, _, err = self.run_cli(command, "--help")
            self.assertEqual((code, err), (0, ""))
            self.assertIn(f"usage: mesostw {command}", printed.getvalue())
            self.assertIn("--master", printed.getvalue())

    def test_zookeeper_master_is_resolved_to_the_leader(self) -> None:
        """A zk:// master is looked up in ZooKeeper; the leader's host:port is then used."""
        from mesostw import detector
        from mesostw.model.info import MasterInfo

        asked = []

        def leader(url: str) -> MasterInfo:
            asked.append(url)
            return MasterInfo(id="m", ip="127.0.0.1", port=1, hostname="127.0.0.1")

        self.patch(detector, "find_leader", leader)
        code, _, err = self.run_cli("state", "--master", "zk://127.0.0.1:2181/mesos")
        self.assertEqual(asked, ["zk://127.0.0.1:2181/mesos"])
        self.assertEqual(code, 1)
        self.assertIn("127.0.0.1:1", err)

    def test_zookeeper_without_a_leader_is_a_clear_error(self) -> None:
        """With no elected master under the zk:// path, the CLI says so in one line and exits 1."""
        from mesostw import detector

        def no_leader(url: str) -> None:
            raise LookupError("no master is elected under zk://127.0.0.1:2181/mesos")

        self.patch(detector, "find_leader", no_leader)
        code, _, err = self.run_cli("state", "--master", "zk://127.0.0.1:2181/mesos")
        self.assertEqual(code, 1)
        self.assertEqual(err, "mesostw state: no master is elected under zk://127.0.0.1:2181/mesos\n")

    def test_master_forms(self) -> None:
        """--master accepts host:port, http(s)://host:port[/], a bare host and a libprocess pid."""
        self.assertEqual(http.base_url("10.0.0.1:5050"), "http://10.0.0.1:5050")
        self.assertEqual(http.base_url("http://m1:5051/"), "http://m1:5051")
        self.assertEqual(http.base_url("https://m1:443/master/state"), "https://m1:443")
        self.assertEqual(http.base_url("m1"), "http://m1:5050")
        self.assertEqual(http.base_url("master@10.0.0.2:5050"), "http://10.0.0.2:5050")
        for bad in ("m1:http", "ftp://m1:21", ":5050", "m1:70000"):
            self.assertRaises(UsageError, http.base_url, bad)


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


# -- execute -------------------------------------------------------------------------------

class FakeDriver:
    """Records the driver calls a scheduler makes."""

    def __init__(self, scheduler: Any = None, framework: Any = None, master: str | None = None) -> None:
        self.scheduler, self.framework, self.master = scheduler, framework, master
        self.calls: list[tuple[Any, ...]] = []

    def start(self) -> defer.Deferred:
        self.calls.append(("start",))
        return defer.Deferred()

    def launchTasks(self, offer_ids: list[str], tasks: list[dict[str, Any]]) -> None:
        self.calls.append(("launch", list(offer_ids), tasks))

    def declineOffer(self, offer_id: str) -> None:
        self.calls.append(("decline", offer_id))

    def stop(self) -> None:
        self.calls.append(("stop",))

    def stopped(self) -> defer.Deferred:
        return defer.succeed(None)


def offer(offer_id: str, resources: str, agent_id: str = "S1") -> Offer:
    return Offer(id=offer_id, framework_id="F1", agent_id=agent_id, hostname="agent-one",
                 resources=Resources.parse(resources))


class ExecuteSchedulerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.driver = FakeDriver()
        self.scheduler = execute.ExecuteScheduler("hello", "echo hi", Resources.parse("cpus:0.1;mem:32"),
                                                  {"GREETING": "hi"}, self.out, self.err)
        self.codes: list[int] = []
        self.scheduler.done.addCallback(self.codes.append)

    def test_launches_on_first_sufficient_offer(self) -> None:
        """The first offer holding the resources gets the task; smaller and later offers are declined."""
        self.scheduler.registered(self.driver, "F1", None)
        self.scheduler.resourceOffers(self.driver, [offer("O1", "cpus:0.05;mem:1024"), offer("O2", "cpus:1;mem:64"),
                                                    offer("O3", "cpus:4;mem:4096")])
        self.scheduler.resourceOffers(self.driver, [offer("O4", "cpus:4;mem:4096")])
        task = {"name": "hello", "task_id": {"value": "hello"}, "agent_id": {"value": "S1"},
                "resources": Resources.parse("cpus:0.1;mem:32").to_json(),
                "command": {"value": "echo hi", "environment": {"variables": [{"name": "GREETING", "value": "hi"}]}}}
        self.assertEqual(self.driver.calls, [("decline", "O1"), ("launch", ["O2"], [task]), ("decline", "O3"),
                                             ("decline", "O4")])
        self.assertEqual(TaskInfo.from_json(task).command.environment, {"GREETING": "hi"})
        self.assertEqual(self.out.getvalue(), "Subscribed with ID F1\nSubmitted task 'hello' to agent 'S1'\n")

    def test_finished_task_stops_driver_and_exits_zero(self) -> None:
        """Status updates are printed; TASK_FINISHED stops the driver and gives exit code 0."""
        self.scheduler.statusUpdate(self.driver, TaskStatus("hello", "TASK_RUNNING", source="SOURCE_EXECUTOR"))
        self.assertEqual((self.driver.calls, self.codes), ([], []))
        self.scheduler.statusUpdate(self.driver, TaskStatus("hello", "TASK_FINISHED", message="Command exited with "
                                                            "status 0"))
        self.assertEqual(self.driver.calls, [("stop",)])
        self.assertEqual(self.codes, [0])
        self.assertEqual(self.out.getvalue(), "Received status update TASK_RUNNING for task 'hello'\n"
                                              "  source: SOURCE_EXECUTOR\n"
                                              "Received status update TASK_FINISHED for task 'hello'\n"
                                              "  message: 'Command exited with status 0'\n")

    def test_failed_task_exits_one(self) -> None:
        """A task that fails ends the run with exit code 1 and the reason printed."""
        self.scheduler.statusUpdate(self.driver, TaskStatus("hello", "TASK_FAILED", message="exit 3",
                                                            reason="REASON_COMMAND_EXECUTOR_FAILED"))
        self.assertEqual(self.codes, [1])
        self.assertIn("  reason: REASON_COMMAND_EXECUTOR_FAILED\n", self.out.getvalue())

    def test_exit_codes(self) -> None:
        """Only TASK_FINISHED maps to exit 0; every other terminal state to 1."""
        self.assertEqual({state: execute.exit_code(state) for state in TERMINAL_STATES},
                         {state: 0 if state == "TASK_FINISHED" else 1 for state in TERMINAL_STATES})

    def test_other_tasks_are_ignored(self) -> None:
        """Updates about other task IDs change nothing."""
        self.scheduler.statusUpdate(self.driver, TaskStatus("other", "TASK_FINISHED"))
        self.assertEqual((self.driver.calls, self.codes, self.out.getvalue()), ([], [], ""))

    def test_error_fails_the_run(self) -> None:
        """A framework error (e.g. refused registration) fails the run with its message."""
        failures: list[Any] = []
        self.scheduler.done.addErrback(failures.append)
        self.scheduler.error(self.driver, "Framework has been removed")
        self.assertEqual(failures[0].value.message, "Framework has been removed")
        self.assertIsInstance(failures[0].value, CLIError)

    def test_disconnection_warns_once(self) -> None:
        """Losing the master prints one warning until the framework registers again."""
        self.scheduler.disconnected(self.driver)
        self.scheduler.disconnected(self.driver)
        self.scheduler.registered(self.driver, "F1", None)
        self.scheduler.disconnected(self.driver)
        self.assertEqual(self.err.getvalue(), "mesostw execute: lost the master; retrying\n" * 2)


class ExecutionTests(unittest.TestCase):
    def execution(self, *extra: str) -> tuple[execute.Execution, task.Clock, io.StringIO]:
        args = main.build_parser().parse_args(["execute", "--name", "hello", "--command", "true",
                                               "--master", "http://10.1.2.3:5050/", "--user", "alice",
                                               "--framework_name", "smoke", "--checkpoint", "--role", "ops",
                                               "--env", "A=1", "--env", '{"B": "2"}', *extra])
        clock, out = task.Clock(), io.StringIO()
        return execute.Execution(clock, args, out, io.StringIO(), make_driver=FakeDriver), clock, out

    def test_framework_and_master_from_flags(self) -> None:
        """The driver gets a FrameworkInfo from the flags and the master as host:port."""
        execution, _, _ = self.execution()
        driver = execution.driver
        framework = driver.framework
        self.assertEqual((framework.user, framework.name, framework.checkpoint, framework.role),
                         ("alice", "smoke", True, "ops"))
        self.assertEqual(driver.master, "10.1.2.3:5050")
        self.assertEqual(execution.scheduler.environment, {"A": "1", "B": "2"})

    def test_terminal_update_ends_the_run(self) -> None:
        """run() fires with the task's exit code and cancels the timeout."""
        execution, clock, _ = self.execution("--timeout", "30")
        codes: list[int] = []
        execution.run().addCallback(codes.append)
        self.assertEqual(execution.driver.calls, [("start",)])
        execution.scheduler.statusUpdate(execution.driver, TaskStatus("hello", "TASK_KILLED"))
        self.assertEqual(codes, [1])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(execution.scheduler.err.getvalue(), "")

    def test_timeout(self) -> None:
        """Without a terminal update in time, the framework is torn down and the run fails."""
        execution, clock, _ = self.execution("--timeout", "2.5")
        failures: list[Any] = []
        execution.run().addErrback(failures.append)
        execution.scheduler.registered(execution.driver, "F1", None)
        execution.scheduler.statusUpdate(execution.driver, TaskStatus("hello", "TASK_RUNNING"))
        clock.advance(2.4)
        self.assertEqual(failures, [])
        clock.advance(0.1)
        self.assertEqual(execution.driver.calls, [("start",), ("stop",)])
        self.assertEqual(failures[0].value.message, "task 'hello' did not end within 2.5 seconds (last state "
                                                    "TASK_RUNNING)")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_unreachable_master(self) -> None:
        """Not registering in time warns once on stderr, and the timeout then names registration."""
        execution, clock, _ = self.execution("--timeout", "8")
        err = execution.scheduler.err
        failures: list[Any] = []
        execution.run().addErrback(failures.append)
        clock.advance(execute.REGISTRATION_WARNING)
        self.assertEqual(err.getvalue(), "mesostw execute: still trying to register with the master at 10.1.2.3:5050\n")
        clock.advance(8)
        self.assertEqual(failures[0].value.message, "could not register with the master within 8 seconds")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_interrupt_tears_down(self) -> None:
        """Ctrl-C before the task ends stops the driver (tearing the framework down) and fails the run."""
        execution, _, _ = self.execution()
        failures: list[Any] = []
        execution.run().addErrback(failures.append)
        self.assertIsNotNone(execution.interrupt())
        self.assertEqual(execution.driver.calls, [("start",), ("stop",)])
        self.assertIn("interrupted", failures[0].value.message)
        self.assertIsNone(execution.interrupt())
