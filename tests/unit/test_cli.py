"""The ``mesostw`` command line: parsing, usage errors, and ``execute`` through its scheduler with a
fake driver and a ``task.Clock``. The HTTP commands run against real sites in
``tests/integration/test_cli_http.py``; ``execute``'s end-to-end run is an integration test too.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from mesostw.cli import execute, http, main
from mesostw.cli.errors import CLIError, UsageError
from mesostw.model.resources import Resources
from mesostw.model.task import TERMINAL_STATES, Offer, TaskInfo, TaskStatus
from tests.helpers.clocktest import ClockTestCase

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


class ExecutionTests(ClockTestCase):
    def execution(self, *extra: str) -> tuple[execute.Execution, task.Clock, io.StringIO]:
        args = main.build_parser().parse_args(["execute", "--name", "hello", "--command", "true",
                                               "--master", "http://10.1.2.3:5050/", "--user", "alice",
                                               "--framework_name", "smoke", "--checkpoint", "--role", "ops",
                                               "--env", "A=1", "--env", '{"B": "2"}', *extra])
        clock, out = self.makeClock(), io.StringIO()
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

    def test_zookeeper_master_is_followed_not_resolved(self) -> None:
        """Given zk://, execute hands the URL itself to the driver (which follows every leader elected
        there) instead of the leader's address looked up once; a malformed URL is a usage error."""
        from mesostw import detector

        self.patch(detector, "find_leader", lambda url: self.fail("execute must not resolve the leader once"))
        seen: list[str] = []
        self.patch(execute, "run", lambda args, out, err: seen.append(args.master) or 0)
        url = "zk://127.0.0.1:2181,127.0.0.2:2181/mesos"
        self.assertEqual(main.run(["execute", "--name", "t", "--command", "true", "--master", url],
                                 io.StringIO(), io.StringIO()), 0)
        self.assertEqual(seen, [url])
        execution, _, _ = self.execution("--master", url)
        self.assertEqual(execution.driver.master, url)
        with self.assertRaises(UsageError) as raised:
            self.execution("--master", "zk://127.0.0.1:99999/mesos")
        self.assertIn("invalid ZooKeeper server", str(raised.exception))

    def test_terminal_update_ends_the_run(self) -> None:
        """run() fires with the task's exit code and cancels the timeout."""
        execution, clock, _ = self.execution("--timeout", "30")
        codes: list[int] = []
        execution.run().addCallback(codes.append)
        self.assertEqual(execution.driver.calls, [("start",)])
        execution.scheduler.statusUpdate(execution.driver, TaskStatus("hello", "TASK_KILLED"))
        self.assertEqual(codes, [1])
        self.assertClockIdle(clock)
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
        self.assertClockIdle(clock)

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
        self.assertClockIdle(clock)

    def test_interrupt_tears_down(self) -> None:
        """Ctrl-C before the task ends stops the driver (tearing the framework down) and fails the run."""
        execution, _, _ = self.execution()
        failures: list[Any] = []
        execution.run().addErrback(failures.append)
        self.assertIsNotNone(execution.interrupt())
        self.assertEqual(execution.driver.calls, [("start",), ("stop",)])
        self.assertIn("interrupted", failures[0].value.message)
        self.assertIsNone(execution.interrupt())
