"""``mesostw execute``: run one command as a task, like Mesos's ``mesos-execute``.

Registers a throwaway framework over Perspective Broker, launches one task on the first offer that
holds the requested resources (declining every other offer), prints the task's status updates, and
tears the framework down when the task ends. Exits 0 only if the task finished. Given a ``zk://``
master it follows the elected leader through failovers for as long as it runs.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Callable
from typing import Any, TextIO

from twisted.internet import defer
from twisted.internet.task import react

from mesostw.auth.credentials import Credential
from mesostw.cli.errors import CLIError, UsageError
from mesostw.cli.http import parse_master
from mesostw.model.info import FrameworkInfo, MasterInfo
from mesostw.model.resources import Resources
from mesostw.model.task import FINISHED, Offer, TaskStatus
from mesostw.model.validation import ValidationError
from mesostw.scheduler.driver import Scheduler
from mesostw.zk.url import is_zk, parse_zk_url

DEFAULT_RESOURCES = "cpus:0.1;mem:32"
#: How long to wait for the teardown to reach the master before exiting anyway.
STOP_GRACE = 5.0
#: After this long without registering, say so (the driver keeps retrying quietly).
REGISTRATION_WARNING = 5.0


class ExecuteScheduler(Scheduler):
    """Launches one command task and reports how it ended through :attr:`done` (an exit code)."""

    def __init__(self, name: str, command: str, resources: Resources, environment: dict[str, str], out: TextIO,
                 err: TextIO | None = None):
        self.name = name
        self.command = command
        self.resources = resources
        self.environment = environment
        self.out = out
        self.err = err if err is not None else out
        self.launched = False
        self.framework_id: str | None = None
        self.state: str | None = None
        self.done: defer.Deferred = defer.Deferred()
        self._warned = False

    def task_info(self, offer: Offer) -> dict[str, Any]:
        variables = [{"name": key, "value": value} for key, value in self.environment.items()]
        return {"name": self.name, "task_id": {"value": self.name}, "agent_id": {"value": offer.agent_id},
                "resources": self.resources.to_json(),
                "command": {"value": self.command, "environment": {"variables": variables}}}

    # -- Mesos callbacks -------------------------------------------------------------

    def registered(self, driver: Any, frameworkId: str, masterInfo: MasterInfo) -> None:
        self._warned = False
        self.framework_id = frameworkId
        self._print(f"Subscribed with ID {frameworkId}")

    def reregistered(self, driver: Any, masterInfo: MasterInfo) -> None:
        self._warned = False

    def disconnected(self, driver: Any) -> None:
        self.warn("lost the master; retrying")

    def warn(self, message: str) -> None:
        """One warning line per spell of trouble (reset by registering again)."""
        if not self._warned and not self.done.called:
            self._warned = True
            self.err.write(f"mesostw execute: {message}\n")
            self.err.flush()

    def resourceOffers(self, driver: Any, offers: list[Offer]) -> None:
        for offer in offers:
            if not self.launched and not self.done.called and offer.resources.contains(self.resources):
                self.launched = True
                driver.launchTasks([offer.id], [self.task_info(offer)])
                self._print(f"Submitted task '{self.name}' to agent '{offer.agent_id}'")
            else:
                driver.declineOffer(offer.id)

    def statusUpdate(self, driver: Any, status: TaskStatus) -> None:
        if status.task_id != self.name or self.done.called:
            return
        self.state = status.state
        lines = [f"Received status update {status.state} for task '{status.task_id}'"]
        if status.message:
            lines.append(f"  message: '{status.message}'")
        if status.source:
            lines.append(f"  source: {status.source}")
        if status.reason:
            lines.append(f"  reason: {status.reason}")
        self._print("\n".join(lines))
        if status.terminal:
            driver.stop()
            self.done.callback(exit_code(status.state))

    def error(self, driver: Any, message: str) -> None:
        if not self.done.called:
            self.done.errback(CLIError(message or "the master refused the framework"))

    # -- outside events ----------------------------------------------------------------

    def timed_out(self, driver: Any, seconds: float) -> None:
        """No terminal update in time: tear the framework down (killing the task) and fail."""
        if self.done.called:
            return
        driver.stop()
        if self.framework_id is None:
            message = f"could not register with the master within {seconds:g} seconds"
        else:
            message = f"task '{self.name}' did not end within {seconds:g} seconds"
            if self.state:
                message += f" (last state {self.state})"
        self.done.errback(CLIError(message))

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def exit_code(state: str) -> int:
    """0 only for a task that finished; any other end is a failure."""
    return 0 if state == FINISHED else 1


class Execution:
    """One run of ``mesostw execute`` on a reactor: the scheduler, its driver, the timeout."""

    def __init__(self, reactor: Any, args: argparse.Namespace, out: TextIO, err: TextIO,
                 make_driver: Callable[..., Any] | None = None):
        if make_driver is None:
            from mesostw.scheduler.pb import MesosSchedulerDriver

            make_driver = MesosSchedulerDriver
        self.reactor = reactor
        self.timeout: float | None = args.timeout
        environment = {key: value for pairs in args.env for key, value in pairs}
        self.scheduler = ExecuteScheduler(args.name, args.command, args.resources, environment, out, err)
        framework = FrameworkInfo(user=args.user or current_user(), name=args.framework_name,
                                  checkpoint=args.checkpoint, role=args.role, principal=args.principal)
        if is_zk(args.master):
            try:
                parse_zk_url(args.master)
            except ValueError as exc:
                raise UsageError(f"invalid --master: {exc}") from None
            self.master = args.master  # the driver follows the leader elected there
        else:
            _, host, port = parse_master(args.master)
            self.master = f"{host}:{port}"
        credential = Credential(args.principal, args.secret) if args.principal and args.secret is not None else None
        if credential is not None:
            self.driver: Any = make_driver(self.scheduler, framework, self.master, credential=credential)
        else:
            self.driver = make_driver(self.scheduler, framework, self.master)
        self._finished: defer.Deferred = defer.Deferred()

    def run(self) -> defer.Deferred:
        """Fires with the exit code, or fails with :class:`CLIError`; the driver is stopped either way."""
        timers = [self.reactor.callLater(REGISTRATION_WARNING, self._unregistered)]
        if self.timeout is not None:
            timers.append(self.reactor.callLater(self.timeout, self.scheduler.timed_out, self.driver, self.timeout))
        self.driver.start()

        def finished(result: Any) -> defer.Deferred:
            for timer in timers:
                if timer.active():
                    timer.cancel()
            d = defer.maybeDeferred(self.driver.stopped)
            d.addTimeout(STOP_GRACE, self.reactor)
            d.addErrback(lambda _: None)  # exit anyway if the master cannot be told
            d.addCallback(lambda _: result)
            return d

        def notify(result: Any) -> Any:
            self._finished.callback(None)
            return result

        return self.scheduler.done.addBoth(finished).addBoth(notify)

    def _unregistered(self) -> None:
        if self.scheduler.framework_id is None:
            self.scheduler.warn(f"still trying to register with the master at {self.master}")

    def interrupt(self) -> defer.Deferred | None:
        """The process is asked to quit (Ctrl-C) before the task ended: tear the framework down first."""
        if self.scheduler.done.called:
            return None
        self.driver.stop()
        self.scheduler.done.errback(CLIError("interrupted; the framework was torn down"))
        return self._finished


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


# -- the command ------------------------------------------------------------------

def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "execute", parents=[common], help="run one command as a task (like mesos-execute)",
        description="Register a framework, run one command as a task, print its status updates, and exit "
                    "0 if it finished (1 otherwise).")
    parser.add_argument("--name", required=True, help="the task's name and ID")
    parser.add_argument("--command", required=True, help="the shell command to run")
    parser.add_argument("--resources", type=_resources, default=_resources(DEFAULT_RESOURCES),
                        help=f"what the task needs (default: {DEFAULT_RESOURCES!r})")
    parser.add_argument("--framework_name", "--framework-name", default="mesostw-execute",
                        help="the framework's name (default: mesostw-execute)")
    parser.add_argument("--checkpoint", action="store_true", help="ask agents to checkpoint the framework")
    parser.add_argument("--role", default="*", help="the framework's role (default: *)")
    parser.add_argument("--user", default=None, help="the user to run the task as (default: the current user)")
    parser.add_argument("--env", type=_env, action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable for the command (repeatable; or a JSON object)")
    parser.add_argument("--principal", default=None,
                        help="the framework's principal, to authenticate (with --secret) and for ACLs")
    parser.add_argument("--secret", default=None, help="the principal's secret (CRAM-MD5 authentication)")
    parser.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="give up (and tear the framework down) if the task has not ended by then")
    parser.set_defaults(func=run, follows_leader=True)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    outcome: dict[str, Any] = {}

    def failed(failure: Any) -> None:
        if failure.check(CLIError):
            outcome["error"] = failure.value
        else:  # a bug: show it, since nothing else logs in the CLI
            err.write(failure.getTraceback())
            outcome["code"] = 1

    def main(reactor: Any) -> defer.Deferred:
        execution = Execution(reactor, args, out, err)
        reactor.addSystemEventTrigger("before", "shutdown", execution.interrupt)
        d = execution.run()
        d.addCallbacks(lambda code: outcome.update(code=code), failed)
        return d

    try:
        react(main)
    except SystemExit:
        pass
    if "error" in outcome:
        raise outcome["error"]
    return int(outcome.get("code", 1))


def _resources(text: str) -> Resources:
    try:
        resources = Resources.parse(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not resources:
        raise argparse.ArgumentTypeError(f"no resources in {text!r}")
    return resources


def _env(text: str) -> list[tuple[str, str]]:
    if text.lstrip().startswith("{"):
        try:
            decoded = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise argparse.ArgumentTypeError("expected a JSON object of names to values")
        return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in decoded.items()]
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return [(key, value)]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the timeout must be positive, got {text!r}")
    return value
