"""The default executor (task groups) against a fake agent stream: its real task processes, its updates,
its sandboxes and its all-or-nothing restart policy."""

from __future__ import annotations

import base64
import json
import os
import selectors
import socket
import tempfile
import time
from typing import Any

from twisted.trial import unittest

from mesostw.executor.command import RecordReader, record
from mesostw.executor.default import DefaultExecutor, sandbox_of


def task(task_id: str, shell: str, **extra: Any) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": "S1"},
            "command": {"value": shell}, **extra}


class FakeAgentStream:
    """The agent's end of an executor's connection: a socket pair, RecordIO both ways."""

    def __init__(self, executor: DefaultExecutor):
        self.executor = executor
        ours, theirs = socket.socketpair()
        self.sock = ours
        ours.setblocking(False)
        executor.sock = theirs
        executor.selector.register(theirs, selectors.EVENT_READ, executor.on_stream)
        self.reader = RecordReader()
        self.calls: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.sock.sendall(record(json.dumps(event).encode()))

    def received(self) -> list[dict[str, Any]]:
        """Every call the executor sent so far."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.calls.extend(self.reader.feed(data))
        except BlockingIOError:
            pass
        return self.calls

    def updates(self, task_id: str | None = None) -> list[dict[str, Any]]:
        return [c["update"]["status"] for c in self.received() if c["type"] == "UPDATE"
                and (task_id is None or c["update"]["status"]["task_id"]["value"] == task_id)]

    def states(self, task_id: str) -> list[str]:
        return [s["state"] for s in self.updates(task_id)]

    def acknowledge_all(self) -> None:
        """ACKNOWLEDGED for every update sent so far (as the agent does once it has checkpointed each)."""
        for status in self.updates():
            self.send({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": status["task_id"], "uuid": status["uuid"]}})

    def close(self) -> None:
        self.sock.close()


class DefaultExecutorTests(unittest.TestCase):
    """A DefaultExecutor in this process, its agent a :class:`FakeAgentStream`, driven step by step."""

    def setUp(self) -> None:
        self.sandbox = tempfile.mkdtemp()
        self.executor = DefaultExecutor({"MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_FRAMEWORK_ID": "F",
                                         "MESOS_EXECUTOR_ID": "group", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
                                         "PATH": os.environ.get("PATH", "/usr/bin:/bin")}, sandbox=self.sandbox)
        self.agent = FakeAgentStream(self.executor)
        self.addCleanup(self.agent.close)
        self.addCleanup(self.executor.kill_now)

    def until(self, predicate: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail(f"timed out; calls: {self.agent.received()}")
            self.executor.step(0.05)

    def launch(self, *tasks: dict[str, Any]) -> None:
        self.agent.send({"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": list(tasks)}}})
        self.until(lambda: len([c for c in self.agent.received() if c["type"] == "UPDATE"]) >= 2 * len(tasks))

    def ended(self, *task_ids: str) -> bool:
        terminal = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"}
        return all(set(self.agent.states(t)) & terminal for t in task_ids)

    def test_every_task_reported_and_the_executor_ends(self) -> None:
        """Each task goes TASK_STARTING, TASK_RUNNING, then TASK_FINISHED; once every update is acknowledged
        the executor ends, with status 0."""
        self.launch(task("a", "true"), task("b", "exit 0"))
        self.until(lambda: self.ended("a", "b"))
        for task_id in ("a", "b"):
            self.assertEqual(self.agent.states(task_id), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"])
        self.assertIsNone(self.executor.exit_code)
        self.agent.acknowledge_all()
        self.until(lambda: self.executor.exit_code is not None)
        self.assertEqual(self.executor.exit_code, 0)

    def test_one_failure_kills_the_group(self) -> None:
        """A task that fails takes the rest of its group with it: TASK_FAILED, then TASK_KILLED for the other."""
        self.launch(task("sleeper", "exec sleep 60"), task("failer", "sleep 0.2; exit 3"))
        self.until(lambda: self.ended("sleeper", "failer"))
        self.assertEqual(self.agent.states("failer")[-1], "TASK_FAILED")
        self.assertEqual(self.agent.updates("failer")[-1]["message"], "Command exited with status 3")
        self.assertEqual(self.agent.states("sleeper")[-1], "TASK_KILLED")
        self.assertEqual(self.agent.updates("sleeper")[-1]["message"], "Command terminated with signal SIGTERM")

    def test_a_kill_kills_the_group(self) -> None:
        """KILL of one task kills it (with the kill's grace period) and then the rest of its group."""
        self.launch(task("one", "exec sleep 60"), task("two", "exec sleep 60"))
        self.agent.send({"type": "KILL", "kill": {"task_id": {"value": "one"},
                                                  "kill_policy": {"grace_period": {"nanoseconds": 10**9}}}})
        self.until(lambda: self.ended("one", "two"))
        self.assertEqual((self.agent.states("one")[-1], self.agent.states("two")[-1]), ("TASK_KILLED", "TASK_KILLED"))

    def test_groups_are_apart(self) -> None:
        """A failure in one group leaves another group of the same executor running."""
        self.launch(task("g1", "sleep 0.2; exit 1"))
        self.launch(task("g2", "exec sleep 60"))
        self.until(lambda: self.ended("g1"))
        self.executor.step(0.3)
        self.assertEqual(self.agent.states("g2"), ["TASK_STARTING", "TASK_RUNNING"])

    def test_task_sandboxes(self) -> None:
        """Each task runs in tasks/<task id> under the executor's sandbox, which is its MESOS_SANDBOX, with its
        own stdout and stderr; the executor's secret is not passed on."""
        self.executor.environ["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"] = "secret"
        script = 'echo "$MESOS_SANDBOX $(pwd) ${MESOS_EXECUTOR_AUTHENTICATION_TOKEN:-none}"; echo oops >&2'
        self.launch(task("t1", script, command={"value": script, "environment": {
            "variables": [{"name": "GREETING", "value": "hi"}]}}), task("t2", "echo $GREETING-$MESOS_TASK_ID"))
        self.until(lambda: self.ended("t1", "t2"))
        t1 = sandbox_of(self.sandbox, "t1")
        with open(os.path.join(t1, "stdout")) as f:
            self.assertEqual(f.read().split(), [t1, os.path.realpath(t1), "none"])
        with open(os.path.join(t1, "stderr")) as f:
            self.assertEqual(f.read(), "oops\n")
        with open(os.path.join(sandbox_of(self.sandbox, "t2"), "stdout")) as f:
            self.assertEqual(f.read(), "-t2\n")  # t1's environment is t1's own

    def test_tasks_start_as_from_a_shell(self) -> None:
        """A task starts in a process group of its own, reading /dev/null, with SIGPIPE and SIGXFSZ at their
        defaults (which the executor ignores); the executor's own working directory stays where it was."""
        import signal

        here = os.getcwd()
        script = ('test "$(ps -o pgid= -p $$ | tr -d " ")" = $$ && echo own-group; '
                  'grep SigIgn /proc/$$/status; cat; echo end')
        self.launch(task("t1", script))
        self.until(lambda: self.ended("t1"))
        self.assertEqual(self.agent.states("t1")[-1], "TASK_FINISHED")
        self.assertEqual(os.getcwd(), here)
        with open(os.path.join(sandbox_of(self.sandbox, "t1"), "stdout")) as f:
            lines = f.read().split("\n")
        self.assertEqual(lines[0], "own-group")
        ignored = int(lines[1].split()[1], 16)
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):
            self.assertFalse(ignored & (1 << (signum - 1)), f"{signum} ignored")
        self.assertEqual(lines[2], "end")

    def test_parent_sandbox_path_volumes_are_shared(self) -> None:
        """Tasks naming the same PARENT sandbox path share a directory of the executor's sandbox, shown at
        their container_path; a SELF one is a directory of the task's own sandbox."""
        def shared(container_path: str, kind: str = "PARENT", path: str = "scratch") -> dict[str, Any]:
            return {"container_path": container_path, "mode": "RW", "source": {
                "type": "SANDBOX_PATH", "sandbox_path": {"type": kind, "path": path}}}

        self.launch(task("writer", "echo hello > data/msg", container={"type": "MESOS", "volumes": [shared("data")]}),
                    task("reader", "exec sleep 60", container={"type": "MESOS", "volumes": [
                        shared("in/put"), shared("own", "SELF", "cache")]}))
        self.until(lambda: self.ended("writer"))
        self.assertEqual(self.agent.states("writer")[-1], "TASK_FINISHED")
        self.assertEqual(self.agent.states("reader"), ["TASK_STARTING", "TASK_RUNNING"])
        reader = sandbox_of(self.sandbox, "reader")
        with open(os.path.join(reader, "in", "put", "msg")) as f:
            self.assertEqual(f.read(), "hello\n")
        self.assertEqual(os.path.realpath(os.path.join(reader, "in", "put")),
                         os.path.realpath(os.path.join(self.sandbox, "scratch")))
        self.assertEqual(os.path.realpath(os.path.join(reader, "own")), os.path.realpath(os.path.join(reader, "cache")))

    def test_volumes_outside_the_sandboxes_fail_the_group(self) -> None:
        """A SANDBOX_PATH volume whose path climbs out of the sandbox fails its task, and its group with it."""
        escape = {"container_path": "up", "source": {"type": "SANDBOX_PATH",
                                                      "sandbox_path": {"type": "PARENT", "path": "../../etc"}}}
        self.agent.send({"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": [
            task("ok", "exec sleep 60"), task("bad", "true", container={"type": "MESOS", "volumes": [escape]})]}}})
        self.until(lambda: self.ended("ok", "bad"))
        self.assertEqual(self.agent.states("bad"), ["TASK_FAILED"])
        self.assertIn("relative paths inside the sandboxes", self.agent.updates("bad")[0]["message"])
        self.assertEqual(self.agent.states("ok")[-1], "TASK_KILLED")
        self.assertFalse(os.path.lexists(os.path.join(sandbox_of(self.sandbox, "bad"), "up")))

    def test_a_task_that_cannot_start_fails_the_group(self) -> None:
        """A task whose program does not exist is TASK_FAILED, and the group's tasks started are killed."""
        missing = {"shell": False, "value": "/nonexistent/program", "arguments": ["/nonexistent/program"]}
        self.agent.send({"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": [
            task("ok", "exec sleep 60"), task("bad", "", command=missing)]}}})
        self.until(lambda: self.ended("ok", "bad"))
        self.assertEqual(self.agent.states("bad"), ["TASK_FAILED"])
        self.assertIn("No such file or directory", self.agent.updates("bad")[0]["message"])
        self.assertEqual(self.agent.states("ok")[-1], "TASK_KILLED")

    def test_shutdown_kills_everything(self) -> None:
        """SHUTDOWN kills every task of every group; the executor then ends."""
        self.launch(task("x", "exec sleep 60"), task("y", "exec sleep 60"))
        self.agent.send({"type": "SHUTDOWN"})
        self.until(lambda: self.ended("x", "y"))
        self.agent.acknowledge_all()
        self.until(lambda: self.executor.exit_code is not None)

    def test_lost_agent_kills_tasks_of_frameworks_that_do_not_checkpoint(self) -> None:
        """Without checkpointing, losing the agent kills the tasks and ends the executor (status 1)."""
        self.launch(task("x", "exec sleep 60"))
        pid = self.executor.runs["x"].pid
        self.agent.close()
        self.until(lambda: self.executor.exit_code is not None)
        self.assertEqual(self.executor.exit_code, 1)
        assert pid is not None
        self.until(lambda: _gone(pid))

    def test_subscribe_names_unacknowledged_tasks(self) -> None:
        """A re-SUBSCRIBE lists the tasks none of whose updates the agent acknowledged yet."""
        self.launch(task("x", "exec sleep 60"))
        self.assertEqual([t["task_id"]["value"] for t in self.executor.unacknowledged_tasks()], ["x"])
        status = self.agent.updates("x")[0]
        self.agent.send({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": "x"}, "uuid": status["uuid"]}})
        self.until(lambda: not self.executor.unacknowledged_tasks())
        self.assertEqual(base64.b64decode(status["uuid"]).__len__(), 16)


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
