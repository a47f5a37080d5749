"""Both command executors, the Python one (:mod:`mesostw.executor.command`) and the native one
(:mod:`mesostw.executor.native`), behave the same: each is started by a real launcher process
(:mod:`mesostw.executor.zygote`), and the test plays the agent on a real socket (the executor stream:
preamble, RecordIO of v1 Calls and Events).

Every behaviour is a method of :class:`CommandExecutorBehaviour`, run once per implementation by its
subclasses; the native run checks that the executor really is the native one (its process is named
``mesos-executor``). :class:`RealAgentTests` runs tasks through a real master and agent with each.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mesostw.executor import native
from mesostw.executor.command import SECRET_VARIABLE, descendants
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from mesostw.wire.preambles import EXECUTOR as PREAMBLE
from tests.helpers.cluster import command_task
from tests.helpers.processes import ProcessCluster, wait_for
from tests.integration.test_core_cluster import LaunchingScheduler

#: How long any one step may take before the test fails.
DEADLINE = 20.0


class Agent:
    """The agent's side of one executor's stream."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        conn.settimeout(DEADLINE)
        self.buffer = b""
        self.preamble = self._read(len(PREAMBLE))

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError("the executor closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def call(self) -> dict[str, Any]:
        """The next Call the executor sends."""
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError("the executor closed the connection")
            self.buffer += chunk
        header, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(self._read(int(header)))

    def closed(self) -> bool:
        """Whether the executor closes the connection (nothing else comes)."""
        try:
            return self.conn.recv(65536) == b""
        except ConnectionResetError:
            return True

    def send(self, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        self.conn.sendall(str(len(body)).encode() + b"\n" + body)

    def update(self) -> dict[str, Any]:
        """The status of the next UPDATE."""
        call = self.call()
        assert call["type"] == "UPDATE", call
        return call["update"]["status"]

    def acknowledge(self, status: dict[str, Any]) -> None:
        self.send({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": status["task_id"], "uuid": status["uuid"]}})

    def close(self) -> None:
        self.conn.close()


class CommandExecutorBehaviour:
    """What a command executor does for a plain command task; ``native`` picks the implementation."""

    native = False

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(DEADLINE)
        self.addCleanup(self.server.close)
        self.launcher = subprocess.Popen([sys.executable, "-m", "mesostw.executor.zygote"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)
        self.addCleanup(self._stop_launcher)
        self.lines = b""
        self.statuses: dict[int, int] = {}
        self.pids: list[int] = []

    def _stop_launcher(self) -> None:
        for pid in self.pids:
            for child in [pid, *descendants(pid)]:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        assert self.launcher.stdin is not None and self.launcher.stdout is not None
        self.launcher.stdin.close()
        try:
            self.launcher.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.launcher.kill()
            self.launcher.wait()
        self.launcher.stdout.close()

    # -- the launcher ----------------------------------------------------------------------------------

    def environment(self, **extra: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MESOS_FRAMEWORK_ID": "framework-1",
               "MESOS_EXECUTOR_ID": "executor-1", "MESOS_AGENT_ENDPOINT": f"127.0.0.1:{self.server.getsockname()[1]}",
               "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs", "MESOS_CHECKPOINT": "0",
               SECRET_VARIABLE: "the-secret", "FROM_THE_AGENT": "yes"}
        env.update(extra)
        return env

    def line(self) -> dict[str, Any]:
        """The launcher's next line."""
        assert self.launcher.stdout is not None
        fd = self.launcher.stdout.fileno()
        deadline = time.monotonic() + DEADLINE
        while b"\n" not in self.lines:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self.fail("the launcher did not answer")
            chunk = os.read(fd, 65536)
            if not chunk:
                self.fail("the launcher exited")
            self.lines += chunk
        line, self.lines = self.lines.split(b"\n", 1)
        return json.loads(line)

    def request(self, env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        """Ask the launcher for a command executor; its answer."""
        assert self.launcher.stdin is not None
        request = {"id": 1, "mode": "command-executor", "argv": [], "env": env or self.environment(),
                   "cwd": self.directory, "stdout": os.path.join(self.directory, "stdout"),
                   "stderr": os.path.join(self.directory, "stderr"), "user": None, "cgroups": [],
                   "native": self.native}
        request.update(extra)
        self.launcher.stdin.write(json.dumps(request).encode() + b"\n")
        self.launcher.stdin.flush()
        while True:
            answer = self.line()
            if "exited" in answer:
                self.statuses[answer["exited"]] = answer["status"]
                continue
            if "pid" in answer:
                self.pids.append(answer["pid"])
            return answer

    def start(self, env: dict[str, str] | None = None) -> tuple[int, Agent]:
        """Start an executor and take its subscription: (its pid, the agent's side)."""
        answer = self.request(env)
        self.assertIn("pid", answer, answer)
        pid = answer["pid"]
        if self.native:
            with open(f"/proc/{pid}/comm") as f:
                self.assertEqual(f.read().strip(), "mesos-executor", "the native executor did not run")
        return pid, self.subscribed()

    def subscribed(self) -> Agent:
        conn, _ = self.server.accept()
        agent = Agent(conn)
        self.addCleanup(agent.close)
        self.assertEqual(agent.preamble, PREAMBLE)
        self.subscription = agent.call()
        self.assertEqual(self.subscription["type"], "SUBSCRIBE")
        self.assertEqual(self.subscription["token"], "the-secret")
        self.assertEqual(self.subscription["framework_id"], {"value": "framework-1"})
        self.assertEqual(self.subscription["executor_id"], {"value": "executor-1"})
        return agent

    def exit_status(self, pid: int) -> int:
        """The executor's wait status, once it has ended."""
        while pid not in self.statuses:
            answer = self.line()
            if "exited" in answer:
                self.statuses[answer["exited"]] = answer["status"]
        return self.statuses[pid]

    def task(self, value: str | None = None, **fields: Any) -> dict[str, Any]:
        """A task running the shell command ``value`` (``fields`` replace the task's fields)."""
        task: dict[str, Any] = {"name": "t", "task_id": {"value": "task-\u00e9\"1"}, "agent_id": {"value": "A"},
                                "resources": [], "command": {"value": value}}
        task.update(fields)
        return task

    def launch(self, agent: Agent, task: dict[str, Any]) -> dict[str, Any]:
        """Launch ``task``; the first update (TASK_RUNNING, or why the command could not start)."""
        agent.send({"type": "LAUNCH", "framework_id": {"value": "framework-1"}, "launch": {"task": task}})
        return agent.update()

    def finished(self, agent: Agent, pid: int) -> dict[str, Any]:
        """The final update; it is acknowledged and the executor exits 0."""
        status = agent.update()
        agent.acknowledge(status)
        self.assertEqual(os.waitstatus_to_exitcode(self.exit_status(pid)), 0)
        return status

    def read(self, name: str) -> str:
        with open(os.path.join(self.directory, name)) as f:
            return f.read()

    def check_status(self, status: dict[str, Any], task: dict[str, Any], state: str) -> None:
        self.assertEqual(status["state"], state, status)
        self.assertEqual(status["task_id"], task["task_id"])
        self.assertEqual(status["source"], "SOURCE_EXECUTOR")
        self.assertEqual(status["executor_id"], {"value": "executor-1"})
        self.assertIsInstance(status["timestamp"], float)
        self.assertLess(abs(status["timestamp"] - time.time()), 60)
        self.assertEqual(len(base64.b64decode(status["uuid"])), 16)

    # -- behaviours ---------------------------------------------------------------------------------

    def test_finished_task(self) -> None:
        """A command that exits 0: TASK_RUNNING, then TASK_FINISHED "Command exited with status 0"; the
        executor exits 0 once the agent acknowledges it, and logs the command's pid."""
        pid, agent = self.start()
        self.assertEqual(self.subscription["subscribe"], {"unacknowledged_tasks": [], "unacknowledged_updates": []})
        task = self.task("echo out; echo err >&2")
        running = self.launch(agent, task)
        self.check_status(running, task, "TASK_RUNNING")
        self.assertNotIn("message", running)
        agent.acknowledge(running)
        status = self.finished(agent, pid)
        self.check_status(status, task, "TASK_FINISHED")
        self.assertEqual(status["message"], "Command exited with status 0")
        self.assertNotEqual(running["uuid"], status["uuid"])
        self.assertEqual(self.read("stdout"), "out\n")
        log = self.read("stderr")
        # the command's own line may come first: it runs while the executor logs
        lines = log.splitlines()
        self.assertIn("err", lines)
        [logged] = [line for line in lines if line != "err"]
        self.assertRegex(logged, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d mesos-executor: forked command at \d+$")

    def test_failed_task(self) -> None:
        """A command that exits with another status: TASK_FAILED with that status."""
        pid, agent = self.start()
        task = self.task("exit 3")
        self.launch(agent, task)
        status = self.finished(agent, pid)
        self.check_status(status, task, "TASK_FAILED")
        self.assertEqual(status["message"], "Command exited with status 3")

    def test_signalled_task(self) -> None:
        """A command ended by a signal: TASK_FAILED naming the signal."""
        pid, agent = self.start()
        self.launch(agent, self.task("kill -SEGV $$"))
        status = self.finished(agent, pid)
        self.assertEqual((status["state"], status["message"]),
                         ("TASK_FAILED", "Command terminated with signal SIGSEGV"))

    def test_task_environment(self) -> None:
        """The task gets the executor's environment without its secret, plus its own variables (which
        win), starts in the sandbox with SIGPIPE and SIGXFSZ at their defaults, in a process group of
        its own."""
        pid, agent = self.start()
        out = os.path.join(self.directory, "env")
        variables = [{"name": "FROM_THE_TASK", "value": "t\u00e9 \"quoted\"\n"},
                     {"name": "FROM_THE_AGENT", "value": "no"}, {"name": "EMPTY"}]
        script = (f"env -0 > {out}; pwd > {out}.pwd; grep SigIgn /proc/self/status > {out}.sig; "
                  f"cut -d' ' -f5 /proc/self/stat > {out}.pgid; echo $$ > {out}.pid")
        task = self.task(None, command={"value": script, "environment": {"variables": variables}})
        self.launch(agent, task)
        self.assertEqual(self.finished(agent, pid)["state"], "TASK_FINISHED")
        with open(out, "rb") as f:
            env = dict(entry.decode().split("=", 1) for entry in f.read().split(b"\0") if entry)
        self.assertEqual(env["FROM_THE_TASK"], "t\u00e9 \"quoted\"\n")
        self.assertEqual(env["FROM_THE_AGENT"], "no")
        self.assertEqual(env["EMPTY"], "")
        self.assertEqual(env["MESOS_EXECUTOR_ID"], "executor-1")
        self.assertNotIn(SECRET_VARIABLE, env)
        self.assertEqual(self.read("env.pwd").strip(), os.path.realpath(self.directory))
        ignored = int(self.read("env.sig").split()[1], 16)
        self.assertEqual(ignored & ((1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))), 0)
        # cut runs in the task's group, which the shell leads
        self.assertEqual(self.read("env.pgid").strip(), self.read("env.pid").strip())

    def test_arguments_found_on_the_tasks_path(self) -> None:
        """Without a shell, the program is looked up on the PATH of the task's environment and gets its
        arguments as given."""
        tools = os.path.join(self.directory, "tools")
        os.mkdir(tools)
        with open(os.path.join(tools, "only-here"), "w") as f:
            f.write(f'#!/bin/sh\nprintf "%s|" "$@" > {self.directory}/args\n')
        os.chmod(os.path.join(tools, "only-here"), 0o755)
        pid, agent = self.start()
        path = {"name": "PATH", "value": f"/nowhere::{tools}"}
        task = self.task(None, command={"shell": False, "value": "ignored", "arguments": ["only-here", "a b", "\u00e9"],
                                        "environment": {"variables": [path]}})
        self.launch(agent, task)
        self.assertEqual(self.finished(agent, pid)["state"], "TASK_FINISHED")
        self.assertEqual(self.read("args"), "a b|\u00e9|")

    def test_missing_program(self) -> None:
        """A program that is not there: TASK_FAILED saying why, and no TASK_RUNNING."""
        pid, agent = self.start()
        task = self.task(None, command={"shell": False, "value": "no-such-program-here"})
        status = self.launch(agent, task)
        self.check_status(status, task, "TASK_FAILED")
        self.assertEqual(status["message"],
                         "Failed to launch the command: No such file or directory: no-such-program-here")
        agent.acknowledge(status)
        self.assertEqual(os.waitstatus_to_exitcode(self.exit_status(pid)), 0)

    def test_kill_with_grace(self) -> None:
        """KILL: SIGTERM to the command, SIGKILL after the kill's grace period; TASK_KILLED."""
        pid, agent = self.start()
        self.launch(agent, self.task("trap '' TERM; touch ready; sleep 100 & wait; wait"))
        ready = os.path.join(self.directory, "ready")
        deadline = time.monotonic() + DEADLINE
        while not os.path.exists(ready):  # the shell ignores SIGTERM from now on
            self.assertLess(time.monotonic(), deadline, "the task did not start")
            select.select([], [], [], 0.01)
        started = time.monotonic()
        agent.send({"type": "KILL", "kill": {"task_id": {"value": "x"},
                                             "kill_policy": {"grace_period": {"nanoseconds": 300_000_000}}}})
        status = self.finished(agent, pid)
        self.assertEqual((status["state"], status["message"]),
                         ("TASK_KILLED", "Command terminated with signal SIGKILL"))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_kill_uses_the_tasks_policy(self) -> None:
        """Without a grace period in the KILL, the task's kill_policy is used; a command that ends on
        SIGTERM is TASK_KILLED by SIGTERM."""
        pid, agent = self.start()
        task = self.task("sleep 100", kill_policy={"grace_period": {"nanoseconds": "20000000000"}})
        self.launch(agent, task)
        agent.send({"type": "KILL", "kill": {"task_id": task["task_id"]}})
        status = self.finished(agent, pid)
        self.assertEqual((status["state"], status["message"]),
                         ("TASK_KILLED", "Command terminated with signal SIGTERM"))

    def test_leftovers_are_killed(self) -> None:
        """What the command leaves running (even in a session of its own) is killed when it ends."""
        pid, agent = self.start()
        pidfile = os.path.join(self.directory, "daemon")
        self.launch(agent, self.task(f"setsid sleep 100 & echo $! > {pidfile}; exit 0"))
        self.assertEqual(self.finished(agent, pid)["state"], "TASK_FINISHED")
        daemon = int(self.read("daemon"))
        self.assertFalse(os.path.exists(f"/proc/{daemon}"), "the daemon outlived its task")

    def test_shutdown_kills_the_task(self) -> None:
        """SHUTDOWN with a task running kills it (TASK_KILLED)."""
        pid, agent = self.start()
        self.launch(agent, self.task("sleep 100"))
        agent.send({"type": "SHUTDOWN"})
        self.assertEqual(self.finished(agent, pid)["state"], "TASK_KILLED")

    def test_shutdown_before_launch(self) -> None:
        """SHUTDOWN before any task: the executor exits 0 at once."""
        pid, agent = self.start()
        agent.send({"type": "SHUTDOWN"})
        self.assertEqual(os.waitstatus_to_exitcode(self.exit_status(pid)), 0)

    def test_error_kills_the_task(self) -> None:
        """ERROR: the task is killed, the executor logs the message and exits 1."""
        pid, agent = self.start()
        self.launch(agent, self.task("echo $$ > task; exec sleep 100"))
        agent.send({"type": "ERROR", "error": {"message": "go away \u00e9"}})
        self.assertEqual(os.waitstatus_to_exitcode(self.exit_status(pid)), 1)
        self.assertIn("mesos-executor: error from the agent: go away \u00e9\n", self.read("stderr"))

    def test_runs_as_the_requested_user(self) -> None:
        """With a user, the executor and its task run as that user with the user's groups, and the task's
        USER, LOGNAME and HOME are the user's."""
        self.assertEqual(os.getuid(), 0, "switching users needs root")
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.directory, 0o777)
        answer = self.request(user="nobody")
        pid = answer["pid"]
        agent = self.subscribed()
        self.launch(agent, self.task("id -u; id -G; echo $USER $LOGNAME $HOME"))
        self.assertEqual(self.finished(agent, pid)["state"], "TASK_FINISHED")
        uid, groups, names = self.read("stdout").splitlines()
        self.assertEqual(int(uid), nobody.pw_uid)
        self.assertEqual(sorted(int(g) for g in groups.split()), sorted(set(os.getgrouplist("nobody", nobody.pw_gid))))
        self.assertEqual(names, f"nobody nobody {nobody.pw_dir}")

    def test_second_launch_ignored(self) -> None:
        """A launch of another task is ignored (logged); the first one runs on."""
        pid, agent = self.start()
        task = self.task("sleep 100")
        self.launch(agent, task)
        other = self.task("exit 1", task_id={"value": "other"})
        agent.send({"type": "LAUNCH", "launch": {"task": other}})
        agent.send({"type": "KILL", "kill": {"task_id": task["task_id"]}})
        status = self.finished(agent, pid)
        self.assertEqual(status["state"], "TASK_KILLED")
        self.assertIn("ignoring another launch", self.read("stderr"))

    def test_disconnect_without_checkpointing(self) -> None:
        """Losing the agent without checkpointing: the task is killed and the executor exits 1."""
        pid, agent = self.start()
        self.launch(agent, self.task("sleep 100"))
        agent.close()
        self.assertEqual(os.waitstatus_to_exitcode(self.exit_status(pid)), 1)
        self.assertIn("the framework does not checkpoint, so the task is killed", self.read("stderr"))

    def test_malformed_record_ends_the_stream(self) -> None:
        """A record that is not JSON ends the stream as the agent's going away does."""
        pid, agent = self.start()
        agent.conn.sendall(b"5\n{nope")
        self.assertTrue(agent.closed())
        self.assertEqual(os.waitstatus_to_exitcode(self.exit_status(pid)), 1)

    def test_reconnects_with_checkpointing(self) -> None:
        """Losing the agent with checkpointing: the task runs on and the executor subscribes again with
        what was not acknowledged (the task as it was launched, its updates); then it finishes as usual."""
        env = self.environment(MESOS_CHECKPOINT="1", MESOS_RECOVERY_TIMEOUT="1mins",
                               MESOS_SUBSCRIPTION_BACKOFF_MAX="100ms")
        pid, agent = self.start(env)
        task = self.task("read line < fifo; exit 0")
        os.mkfifo(os.path.join(self.directory, "fifo"))
        running = self.launch(agent, task)
        agent.close()
        again = self.subscribed()
        self.assertIn("lost the agent (the agent closed the connection); reconnecting", self.read("stderr"))
        self.assertEqual(self.subscription["subscribe"],
                         {"unacknowledged_tasks": [task], "unacknowledged_updates": [{"status": running}]})
        again.acknowledge(running)
        with open(os.path.join(self.directory, "fifo"), "w") as f:
            f.write("go\n")
        status = self.finished(again, pid)
        self.assertEqual(status["state"], "TASK_FINISHED")

    def test_recovery_timeout(self) -> None:
        """With checkpointing, an agent that does not come back within the recovery timeout: the task is
        killed and the executor exits 1."""
        env = self.environment(MESOS_CHECKPOINT="1", MESOS_RECOVERY_TIMEOUT="500ms")
        pid, agent = self.start(env)
        self.launch(agent, self.task("sleep 100"))
        self.server.close()
        agent.close()
        self.assertEqual(os.waitstatus_to_exitcode(self.exit_status(pid)), 1)
        self.assertIn("did not come back within the recovery timeout", self.read("stderr"))

    def test_not_started_by_an_agent(self) -> None:
        """Without the agent's variables, the executor says which are missing and exits 2."""
        env = self.environment()
        del env["MESOS_AGENT_ENDPOINT"], env["MESOS_EXECUTOR_ID"]
        answer = self.request(env)
        self.assertEqual(os.waitstatus_to_exitcode(self.exit_status(answer["pid"])), 2)
        self.assertIn("not started by an agent: MESOS_AGENT_ENDPOINT, MESOS_EXECUTOR_ID not set", self.read("stderr"))

    def test_setup_failures_answer_the_request(self) -> None:
        """What fails before the executor runs fails the launcher's request with the reason."""
        missing = os.path.join(self.directory, "missing")
        answer = self.request(stdout=os.path.join(missing, "stdout"))
        self.assertEqual(answer, {"id": 1, "error": f"cannot run {missing}/stdout: No such file or directory"})
        answer = self.request(cwd=missing)
        self.assertEqual(answer, {"id": 1, "error": f"cannot run {missing}: No such file or directory"})
        answer = self.request(cgroups=[os.path.join(missing, "cgroup.procs")])
        self.assertEqual(answer, {"id": 1, "error": f"cannot join the cgroup {missing}: No such file or directory"})


class PythonCommandExecutorTests(CommandExecutorBehaviour, unittest.TestCase):
    """The Python command executor (the reference)."""

    native = False


class NativeCommandExecutorTests(CommandExecutorBehaviour, unittest.TestCase):
    """The native command executor."""

    native = True

    def setUp(self) -> None:
        self.assertTrue(native.available(), "the native command executor is not built (pip install -e .)")
        super().setUp()


class RealAgentTests(unittest.TestCase):
    """A real master and agent (twistd processes) run plain command tasks with the command executor
    their ``--native_command_executor`` picks, and count which one they started."""

    timeout = 120
    #: the agent's flag, and the kind of command executor it is expected to start
    flag, kind = "true", "native"

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        if self.kind == "native":
            self.assertTrue(native.available(), "the native command executor is not built")
        self.cluster = yield ProcessCluster(self, agents=1, agent_args=[f"--native_command_executor={self.flag}"],
                                            master_args=["--allocation_interval=0.2secs"]).start()

    @defer.inlineCallbacks
    def test_finished_failed_and_killed(self) -> Any:
        """A task that exits 0 finishes, one that exits 3 fails with its status, one killed is
        TASK_KILLED; the agent started the expected command executor for each."""
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("ok", "exit 0"), command_task("bad", "exit 3"),
                             command_task("long", "sleep 600")]
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="root", name="executors"),
                                      self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        yield wait_for(lambda: T.FINISHED in scheduler.states("ok") and T.FAILED in scheduler.states("bad")
                       and T.RUNNING in scheduler.states("long"), 60, what="tasks ended and running")
        driver.killTask("long")
        yield wait_for(lambda: T.KILLED in scheduler.states("long"), 30, what="the task killed")
        messages = {u.task_id: u.message for u in scheduler.updates if u.state in (T.FINISHED, T.FAILED, T.KILLED)}
        self.assertEqual(messages, {"ok": "Command exited with status 0", "bad": "Command exited with status 3",
                                    "long": "Command terminated with signal SIGTERM"})
        executors = yield self.cluster.command_executors()
        self.assertEqual(executors, {"native": 3 if self.kind == "native" else 0,
                                     "python": 3 if self.kind == "python" else 0})


class PythonRealAgentTests(RealAgentTests):
    """The same with ``--native_command_executor=false``: every task's executor is the Python one."""

    flag, kind = "false", "python"
