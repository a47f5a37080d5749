"""Task health checks in the command executor: Mesos's policy (pure), the probes against real
loopback servers and processes, and the executor sending ``healthy`` updates and killing a task
whose check keeps failing (a real command, the executor's own loop, no agent)."""

from __future__ import annotations

import http.server
import os
import socket
import tempfile
import threading
import time
from typing import Any

from twisted.trial import unittest

from mesostw.executor import health
from mesostw.executor.command import CommandExecutor


def check(**fields: Any) -> dict[str, Any]:
    return {"type": "COMMAND", "command": {"value": "true"}, "delay_seconds": 0, "interval_seconds": 1,
            "timeout_seconds": 1, "consecutive_failures": 2, "grace_period_seconds": 5, **fields}


class PolicyTests(unittest.TestCase):
    def test_failures_in_the_grace_period_are_ignored_until_the_first_success(self) -> None:
        """Before any success, failures inside the grace period send nothing; after it they count."""
        policy = health.HealthPolicy(check())
        self.assertEqual(policy.result(False, 1.0), (False, None, False))
        self.assertEqual(policy.result(False, 6.0), (True, False, False))
        self.assertEqual(policy.result(False, 7.0), (True, False, True))

    def test_updates_on_first_success_and_on_recovery_only(self) -> None:
        """The first success and the first success after failures give a healthy update; a failure
        after a success counts at once, grace or not; failures in a row up to the limit kill."""
        policy = health.HealthPolicy(check(consecutive_failures=3))
        self.assertEqual(policy.result(True, 1.0), (True, True, False))
        self.assertEqual(policy.result(True, 2.0), (False, True, False))
        self.assertEqual(policy.result(False, 3.0), (True, False, False))
        self.assertEqual(policy.result(True, 4.0), (True, True, False))
        self.assertEqual([policy.result(False, t).kill for t in (5.0, 6.0, 7.0)], [False, False, True])

    def test_defaults_and_zero_failures(self) -> None:
        """Mesos's defaults fill what is missing; consecutive_failures 0 kills on the first counted failure."""
        policy = health.HealthPolicy({"type": "TCP", "tcp": {"port": 1}})
        self.assertEqual((policy.delay, policy.interval, policy.timeout, policy.grace, policy.consecutive),
                         (15.0, 10.0, 20.0, 10.0, 3))
        strict = health.HealthPolicy(check(consecutive_failures=0, grace_period_seconds=0))
        self.assertEqual(strict.result(False, 1.0), (True, False, True))

    def test_problems(self) -> None:
        """A check without what its type needs, or of an unknown type, is named as a problem."""
        self.assertIsNone(health.problem(check()))
        self.assertIsNone(health.problem({"command": {"value": "true"}}))  # before Mesos 1.2: no type
        self.assertIn("needs a command", health.problem({"type": "COMMAND"}) or "")
        self.assertIn("needs a port", health.problem({"type": "HTTP", "http": {"path": "/"}}) or "")
        self.assertIn("unknown health check type", health.problem({"type": "GRPC"}) or "")
        self.assertIsNotNone(health.problem([]))


class ProbeTests(unittest.TestCase):
    def test_command_exit_status_environment_and_timeout(self) -> None:
        """COMMAND passes on exit 0 with the task's environment; a check past its timeout is killed."""
        self.assertEqual(health.probe(check(command={"value": 'test "$FOO" = bar'}), "127.0.0.1",
                                      {"FOO": "bar", "PATH": os.environ["PATH"]}, None, 5), (True, "command exited "
                                                                                                   "with status 0"))
        ok, what = health.probe(check(command={"value": "exit 3"}), "127.0.0.1", {}, None, 5)
        self.assertEqual((ok, what), (False, "COMMAND health check exited with status 3"))
        started = time.monotonic()
        ok, what = health.probe(check(command={"value": "sleep 30"}), "127.0.0.1", dict(os.environ), None, 0.2)
        self.assertEqual((ok, what), (False, "COMMAND health check timed out after 0.2s"))
        self.assertLess(time.monotonic() - started, 10)

    def test_tcp_and_http(self) -> None:
        """TCP passes on a connection; HTTP on 200-399 or the statuses given; a closed port fails."""
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/ok" else 503)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        port = server.server_address[1]
        self.assertEqual(health.probe({"type": "TCP", "tcp": {"port": port}}, "127.0.0.1", {}, None, 2),
                         (True, "connected"))
        self.assertEqual(health.probe({"type": "HTTP", "http": {"port": port, "path": "ok"}}, "127.0.0.1", {},
                                      None, 2), (True, "HTTP health check answered 200"))
        self.assertEqual(health.probe({"type": "HTTP", "http": {"port": port, "path": "/down"}}, "127.0.0.1", {},
                                      None, 2), (False, "HTTP health check answered 503"))
        self.assertTrue(health.probe({"type": "HTTP", "http": {"port": port, "path": "/down", "statuses": [503]}},
                                     "127.0.0.1", {}, None, 2)[0])
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            unused = closed.getsockname()[1]
        ok, what = health.probe({"type": "TCP", "tcp": {"port": unused}}, "127.0.0.1", {}, None, 2)
        self.assertEqual((ok, what), (False, "TCP health check failed: Connection refused"))


class ExecutorHealthTests(unittest.TestCase):
    """A CommandExecutor with no agent (its updates wait, unacknowledged), driven step by step."""

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()
        self.flag = os.path.join(self.directory, "healthy")
        self.executor = CommandExecutor({"MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_FRAMEWORK_ID": "F",
                                         "MESOS_EXECUTOR_ID": "web.1", "MESOS_CHECKPOINT": "1"})
        self.addCleanup(self.executor.kill_now)

    def statuses(self) -> list[tuple[str, bool | None, str | None]]:
        return [(s["state"], s.get("healthy"), s.get("reason")) for s in self.executor.unacked.values()]

    def until(self, predicate: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail(f"timed out; statuses: {self.statuses()}")
            self.executor.step(0.05)

    def test_health_updates_then_a_kill_after_consecutive_failures(self) -> None:
        """The task's check passes once its file exists (healthy update); once the file goes, each
        failure is an unhealthy update, and the second in a row also kills the task: TASK_KILLED with
        healthy false and Mesos's reason."""
        self.executor.launch({"task_id": {"value": "web.1"}, "command": {"value": "exec sleep 60"},
                              "health_check": check(command={"value": f"test -f {self.flag}"},
                                                    interval_seconds=0.05, grace_period_seconds=30)})
        self.executor.step(0.2)
        self.assertEqual(self.statuses(), [("TASK_RUNNING", None, None)])
        open(self.flag, "w").close()
        self.until(lambda: ("TASK_RUNNING", True, None) in self.statuses())
        os.remove(self.flag)
        self.until(lambda: self.executor.final_uuid is not None)
        self.assertEqual(self.statuses(), [("TASK_RUNNING", None, None), ("TASK_RUNNING", True, None),
                                           ("TASK_RUNNING", False, None), ("TASK_RUNNING", False, None),
                                           ("TASK_KILLED", False, health.REASON)])
        final = self.executor.unacked[self.executor.final_uuid]
        self.assertIn("2 consecutive failed health checks", final["message"])

    def test_an_invalid_check_fails_the_task_before_it_starts(self) -> None:
        """A task whose health check cannot run is not started: TASK_FAILED saying why."""
        self.executor.launch({"task_id": {"value": "web.1"}, "command": {"value": "exec sleep 60"},
                              "health_check": {"type": "HTTP", "http": {}}})
        self.assertIsNone(self.executor.pid)
        (status,) = self.executor.unacked.values()
        self.assertEqual((status["state"], status["message"]),
                         ("TASK_FAILED", "Invalid health check: an HTTP health check needs a port"))
