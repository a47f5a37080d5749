"""The per-task launch path made cheap: the launcher forks without the interpreter's fork hooks, and
the command executor takes its environment (and its task's) from the launcher's request rather than
from a rewritten ``os.environ``. Real forks, a real command, no agent."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from typing import Any

from twisted.trial import unittest

from mesostw.executor import command, zygote
from mesostw.executor.command import SECRET_VARIABLE, CommandExecutor

#: Set by the at-fork hook below in any child an ``os.fork`` makes (a list: harmless in other tests' forks).
_HOOK_RAN: list[bool] = []


def _hook() -> None:
    _HOOK_RAN.append(True)


os.register_at_fork(after_in_child=_hook)


def _child_result(fork: Any, body: Any) -> bytes:
    """Run ``body()`` (which returns bytes) in a child made by ``fork``; what it wrote back."""
    read, write = os.pipe()
    pid = fork()
    if pid == 0:
        try:
            os.close(read)
            os.write(write, body())
        finally:
            os._exit(0)
    os.close(write)
    try:
        chunks = []
        while chunk := os.read(read, 4096):
            chunks.append(chunk)
    finally:
        os.close(read)
        _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        raise AssertionError(f"the child ended with wait status {status}")
    return b"".join(chunks)


class LauncherForkTests(unittest.TestCase):
    def test_fork_skips_the_interpreters_fork_hooks(self) -> None:
        """A child of zygote.fork() runs and reports back, and the hooks os.fork() would run in it do not
        run (the control: a child of os.fork() does run them)."""
        def hook_ran() -> bytes:
            return b"ran" if _HOOK_RAN else b"not run"

        self.assertEqual(_child_result(os.fork, hook_ran), b"ran")
        self.assertEqual(_child_result(zygote.fork, hook_ran), b"not run")

    def test_fork_child_is_a_new_process_that_can_run_threads(self) -> None:
        """The child has its own pid and can start and join a thread (what health checks do)."""
        def report() -> bytes:
            import threading

            seen: list[int] = []
            thread = threading.Thread(target=lambda: seen.append(os.getpid()))
            thread.start()
            thread.join(10)
            return f"{os.getpid()} {seen}".encode()

        pid, seen = _child_result(zygote.fork, report).decode().split(" ", 1)
        self.assertNotEqual(int(pid), os.getpid())
        self.assertEqual(seen, f"[{pid}]")

    def test_a_failed_fork_fails_its_request_only(self) -> None:
        """When fork(2) fails (too many processes), the launcher answers that request with the reason,
        keeps nothing open for it, and goes on with the next."""
        import errno
        import json

        out_r, out_w = os.pipe()
        self.addCleanup(os.close, out_r)
        self.addCleanup(os.close, out_w)
        launcher = zygote.Launcher(inp=out_r, out=out_w)
        for fd in (launcher.wake_r, launcher.wake_w):
            self.addCleanup(os.close, fd)
        self.addCleanup(launcher.selector.close)

        def no_more_processes() -> int:
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

        self.patch(zygote, "fork", no_more_processes)
        self.patch(zygote.native, "spawn", lambda arguments, env, report: no_more_processes())
        descriptors = sorted(os.listdir("/proc/self/fd"))
        request = {"mode": "exec", "argv": ["/bin/true"], "env": {}, "cwd": "/", "stdout": "/dev/null",
                   "stderr": "/dev/null"}
        launcher.start([({"id": 7, **request}, None, None), ({"id": 8, **request}, None, None),
                        ({"id": 9, **request, "mode": "command-executor", "native": True}, None, [b"spec"])])
        replies = [json.loads(line) for line in os.read(out_r, 65536).splitlines()]
        reason = f"cannot start a process: {os.strerror(errno.EAGAIN)}"
        self.assertEqual(replies, [{"id": 7, "error": reason}, {"id": 8, "error": reason}, {"id": 9, "error": reason}])
        self.assertEqual((launcher.children, launcher.reports), (set(), {}))
        self.assertEqual(sorted(os.listdir("/proc/self/fd")), descriptors)

    def test_fork_failure_raises_oserror(self) -> None:
        """When fork(2) fails, zygote.fork raises OSError with the errno, as os.fork does."""
        class FailingLibc:
            def fork(self) -> int:
                import ctypes

                ctypes.set_errno(11)
                return -1

        self.patch(zygote, "_libc", FailingLibc())
        error = self.assertRaises(OSError, zygote.fork)
        self.assertEqual(error.errno, 11)


class ExecutorEnvironmentTests(unittest.TestCase):
    """A CommandExecutor with no agent (its updates wait, unacknowledged), driven step by step."""

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory, True)
        os.environ["MESOSTW_TEST_LAUNCHER_ONLY"] = "1"
        self.addCleanup(os.environ.pop, "MESOSTW_TEST_LAUNCHER_ONLY", None)
        self.base = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_FRAMEWORK_ID": "F", "MESOS_EXECUTOR_ID": "E",
                     "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FROM_THE_REQUEST": "yes",
                     SECRET_VARIABLE: "the-secret"}

    def run_task(self, executor: CommandExecutor, value: str) -> None:
        self.addCleanup(executor.kill_now)
        executor.launch({"task_id": {"value": "t"}, "command": {"value": value, "environment": {
            "variables": [{"name": "FROM_THE_TASK", "value": "too"}]}}})
        deadline = time.monotonic() + 15
        while executor.final_uuid is None:
            if time.monotonic() > deadline:
                self.fail("the command did not end")
            executor.step(0.05)

    def environment(self) -> dict[str, str]:
        with open(os.path.join(self.directory, "env")) as f:
            return dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)

    def test_task_environment_is_the_given_one(self) -> None:
        """Given an environment for its task, the executor starts the task with that one (without the
        executor's secret, with the task's own variables), not with this process's os.environ."""
        executor = CommandExecutor(self.base, self.base)
        self.run_task(executor, f"env > {self.directory}/env")
        env = self.environment()
        self.assertEqual((env.get("FROM_THE_REQUEST"), env.get("FROM_THE_TASK")), ("yes", "too"))
        self.assertNotIn("MESOSTW_TEST_LAUNCHER_ONLY", env)
        self.assertNotIn(SECRET_VARIABLE, env)

    def test_task_environment_defaults_to_the_process_environment(self) -> None:
        """Without one, the task starts from this process's environment (the executor run on its own)."""
        executor = CommandExecutor(self.base)
        self.run_task(executor, f"env > {self.directory}/env")
        env = self.environment()
        self.assertEqual(env.get("MESOSTW_TEST_LAUNCHER_ONLY"), "1")
        self.assertNotIn("FROM_THE_REQUEST", env)

    def test_program_is_found_on_the_tasks_path(self) -> None:
        """A command run without a shell is looked up on the PATH of the task's environment (the given
        one with the task's variables), not on this process's."""
        tools = os.path.join(self.directory, "tools")
        os.mkdir(tools)
        with open(os.path.join(tools, "only-here"), "w") as f:
            f.write(f"#!/bin/sh\necho found > {self.directory}/env\n")
        os.chmod(os.path.join(tools, "only-here"), 0o755)
        executor = CommandExecutor(self.base, self.base)
        self.addCleanup(executor.kill_now)
        executor.launch({"task_id": {"value": "t"}, "command": {"shell": False, "value": "only-here",
                                                                "arguments": ["only-here"], "environment": {
            "variables": [{"name": "PATH", "value": f"{tools}:/usr/bin:/bin"}]}}})
        deadline = time.monotonic() + 15
        while executor.final_uuid is None:
            if time.monotonic() > deadline:
                self.fail("the command did not end")
            executor.step(0.05)
        self.assertEqual(self.read("env"), "found\n")
        self.assertEqual([s["state"] for s in executor.unacked.values()], ["TASK_RUNNING", "TASK_FINISHED"])

    def test_task_starts_with_default_signal_dispositions(self) -> None:
        """The executor ignores SIGPIPE (as Python does); its task does not: SIGPIPE and SIGXFSZ are at
        their defaults in the command, as in one a shell starts."""
        previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGPIPE, previous)
        executor = CommandExecutor(self.base, self.base)
        self.run_task(executor, f"grep SigIgn /proc/self/status > {self.directory}/env")
        ignored = int(self.read("env").split()[1], 16)
        self.assertEqual(ignored & (1 << (signal.SIGPIPE - 1)), 0)
        self.assertEqual(ignored & (1 << (signal.SIGXFSZ - 1)), 0)

    def read(self, name: str) -> str:
        with open(os.path.join(self.directory, name)) as f:
            return f.read()

    def test_main_reads_the_given_environment(self) -> None:
        """main(environ) checks the variables in ``environ``, not in os.environ: without the agent's
        endpoint there it exits 2 even when os.environ has one."""
        os.environ["MESOS_AGENT_ENDPOINT"] = "127.0.0.1:1"
        self.addCleanup(os.environ.pop, "MESOS_AGENT_ENDPOINT", None)
        previous = signal.getsignal(signal.SIGPIPE)
        self.addCleanup(signal.signal, signal.SIGPIPE, previous)
        self.assertEqual(command.main({"MESOS_FRAMEWORK_ID": "F", "MESOS_EXECUTOR_ID": "E"}), 2)


class LauncherProcessTests(unittest.TestCase):
    """A real launcher process (``python -m mesostw.executor.zygote``) over its JSON lines."""

    def setUp(self) -> None:
        import subprocess
        import sys

        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.launcher = subprocess.Popen([sys.executable, "-m", "mesostw.executor.zygote"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)
        self.addCleanup(self.stop)
        self.next_id = 0
        self.buffer = b""

    def stop(self) -> None:
        assert self.launcher.stdin is not None and self.launcher.stdout is not None
        self.launcher.stdin.close()
        try:
            self.launcher.wait(10)
        except Exception:
            self.launcher.kill()
            self.launcher.wait(10)
        self.launcher.stdout.close()

    def messages(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` lines the launcher writes (within a deadline)."""
        import json
        import select

        assert self.launcher.stdout is not None
        fd = self.launcher.stdout.fileno()
        deadline = time.monotonic() + 15
        while self.buffer.count(b"\n") < count:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self.fail(f"the launcher said only {self.buffer!r}")
            self.buffer += os.read(fd, 65536)
        *lines, rest = self.buffer.split(b"\n", count)
        self.buffer = rest
        return [json.loads(line) for line in lines]

    def request(self, mode: str, argv: list[str], env: Any, user: str | None = None, flush: bool = True,
                **extra: Any) -> None:
        import json

        assert self.launcher.stdin is not None
        self.next_id += 1
        self.launcher.stdin.write(json.dumps({
            "id": self.next_id, "mode": mode, "argv": argv, "env": env, "cwd": self.directory,
            "stdout": os.path.join(self.directory, "stdout"), "stderr": os.path.join(self.directory, "stderr"),
            "user": user, **extra}).encode() + b"\n")
        if flush:
            self.launcher.stdin.flush()

    def read(self, name: str) -> str:
        with open(os.path.join(self.directory, name)) as f:
            return f.read()

    def test_command_executor_logs_to_the_sandbox(self) -> None:
        """A command executor's own messages go to the sandbox's stderr file (through the sys.stderr it
        inherits, now on the redirected descriptor): one started without the agent's variables says so
        there and exits 2."""
        self.request("command-executor", [], {"PATH": os.environ.get("PATH", "/bin")})
        started, ended = self.messages(2)
        self.assertEqual(ended, {"exited": started["pid"], "status": 2 << 8})
        self.assertIn("mesos-executor: not started by an agent", self.read("stderr"))

    def test_user_entry_from_the_launcher(self) -> None:
        """A process run as a user gets that user's USER, LOGNAME and HOME (from the entry the launcher
        looked up); an unknown user fails the request with the reason, and no process starts."""
        import pwd

        entry = pwd.getpwuid(os.getuid())
        self.request("exec", ["/bin/sh", "-c", 'echo "$USER $LOGNAME $HOME"'], {"PATH": "/usr/bin:/bin"},
                     user=entry.pw_name)
        started, ended = self.messages(2)
        self.assertEqual(ended, {"exited": started["pid"], "status": 0})
        self.assertEqual(self.read("stdout"), f"{entry.pw_name} {entry.pw_name} {entry.pw_dir}\n")
        self.request("exec", ["/bin/true"], {}, user="no-such-user-here")
        [refused] = self.messages(1)
        self.assertEqual(refused, {"id": 2, "error": "user 'no-such-user-here' does not exist on this agent"})

    def maps(self) -> str:
        with open(f"/proc/{self.launcher.pid}/maps") as f:
            return f.read()

    def test_tls_loaded_for_the_first_executor_that_speaks_it(self) -> None:
        """The launcher starts without ssl (every fork copies what it has loaded) and loads it, once, for
        the first executor whose environment turns TLS on, before forking it."""
        self.request("command-executor", [], {"PATH": "/bin"})
        self.messages(2)
        self.assertNotIn("_ssl", self.maps())
        self.request("command-executor", [], {"PATH": "/bin", "LIBPROCESS_SSL_ENABLED": "true"})
        started, ended = self.messages(2)
        self.assertEqual(ended, {"exited": started["pid"], "status": 2 << 8})
        self.assertIn("_ssl", self.maps())

    def test_preload_names_what_the_launcher_knows(self) -> None:
        """A request may preload the health checks; any other name fails it, saying what may be named."""
        self.request("exec", ["/bin/true"], {}, preload=["health"])
        started, ended = self.messages(2)
        self.assertEqual(ended, {"exited": started["pid"], "status": 0})
        self.request("exec", ["/bin/true"], {}, preload=["os"])
        [refused] = self.messages(1)
        self.assertEqual(refused, {"id": 2, "error": "preload must list some of health"})

    def test_children_start_with_default_signal_dispositions(self) -> None:
        """What the launcher ignores (SIGTERM, SIGINT; SIGPIPE as any Python process) is back at its default
        in the processes it starts."""
        self.request("exec", ["/bin/sh", "-c", "grep SigIgn /proc/$$/status"], {"PATH": "/usr/bin:/bin"})
        started, ended = self.messages(2)
        self.assertEqual(ended, {"exited": started["pid"], "status": 0})
        ignored = int(self.read("stdout").split()[1], 16)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGHUP, signal.SIGCHLD):
            self.assertFalse(ignored & (1 << (signum - 1)), f"{signum!r} is ignored")

    def test_environment_must_be_strings(self) -> None:
        """An environment with a value that is no string fails the request, saying why."""
        self.request("exec", ["/bin/true"], {"N": 1})
        [refused] = self.messages(1)
        self.assertEqual(refused, {"id": 1, "error": "env must map names to strings"})

    def test_requests_that_come_together_are_each_answered(self) -> None:
        """Requests written at once (checked first, then forked together) each get their own answer: a
        refused one its reason, the others their process, whose exits follow."""
        self.request("exec", ["/bin/sh", "-c", "exit 3"], {}, flush=False)
        self.request("exec", ["/bin/true"], {"N": 1}, flush=False)
        self.request("exec", ["/bin/sh", "-c", "exit 4"], {})
        messages = self.messages(5)
        self.assertIn({"id": 2, "error": "env must map names to strings"}, messages)
        pids = {m["id"]: m["pid"] for m in messages if "pid" in m}
        self.assertEqual(set(pids), {1, 3})
        exits = {m["exited"]: m["status"] for m in messages if "exited" in m}
        self.assertEqual(exits, {pids[1]: 3 << 8, pids[3]: 4 << 8})


class ConnectTests(unittest.TestCase):
    def listener(self, family: int, host: str) -> Any:
        import socket

        try:
            server = socket.socket(family, socket.SOCK_STREAM)
            server.bind((host, 0))
        except OSError as exc:
            self.fail(f"cannot listen on {host}: {exc}")
        server.listen(1)
        self.addCleanup(server.close)
        return server

    def test_connects_to_addresses_and_names(self) -> None:
        """The executor reaches its agent at an IPv4 address, an IPv6 address (without the resolver), and
        at a host name (through it)."""
        import socket

        for family, host, target in ((socket.AF_INET, "127.0.0.1", "127.0.0.1"), (socket.AF_INET6, "::1", "::1"),
                                     (socket.AF_INET, "127.0.0.1", "localhost")):
            server = self.listener(family, host)
            sock = command.connect((target, server.getsockname()[1]), None)
            try:
                accepted, _ = server.accept()
                accepted.close()
                self.assertEqual(sock.getpeername()[:2], server.getsockname()[:2])
            finally:
                sock.close()

    def test_refused_connection_raises(self) -> None:
        """Nobody listening: OSError (the executor then reconnects or gives up, as before)."""
        import socket

        server = self.listener(socket.AF_INET, "127.0.0.1")
        port = server.getsockname()[1]
        server.close()
        self.assertRaises(OSError, command.connect, ("127.0.0.1", port), None)


class AgentLauncherTests(unittest.TestCase):
    """The agent's side of the launcher (mesostw.agent.launcher.Launcher) over a fake reactor."""

    def test_launcher_binds_its_symbols_at_start_and_children_do_not_inherit_it(self) -> None:
        """The launcher process starts with LD_BIND_NOW=1 on top of the agent's environment (its libraries'
        symbols are resolved once, not by each forked executor); a launch request carries the
        executor's own environment, without it."""
        import json

        from twisted.internet.testing import StringTransport

        from mesostw.agent.launcher import Launcher

        class Reactor:
            spawned: list[tuple[list[str], dict[str, str]]] = []

            def spawnProcess(self, proto: Any, executable: str, args: list[str], env: dict[str, str],
                             childFDs: Any) -> None:
                self.spawned.append((args, env))
                proto.makeConnection(transport)

        transport = StringTransport()
        reactor = Reactor()
        launcher = Launcher(reactor, python="/usr/bin/python3")
        launcher.startService()
        [(args, env)] = reactor.spawned
        self.assertEqual(args[1:], ["-m", "mesostw.executor.zygote"])
        self.assertEqual(env, dict(os.environ, LD_BIND_NOW="1"))
        launcher.launch("command-executor", [], {"PATH": "/bin"}, "/tmp", "/tmp/out", "/tmp/err")
        request = json.loads(transport.value().splitlines()[0])
        self.assertEqual(request["env"], {"PATH": "/bin"})
