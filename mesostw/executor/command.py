"""The command executor: runs one task's command and reports how it ended.

It is a process of its own (forked by the agent's launcher, see
:mod:`mesostw.executor.zygote`), so that tasks can outlive an agent restart.
The command runs in its own process group; a kill sends SIGTERM to the group
and SIGKILL after the grace period. Exit status 0 gives TASK_FINISHED, any
other TASK_FAILED with the status in the message, a kill TASK_KILLED.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer
from twisted.internet.interfaces import IReadDescriptor

from mesostw.executor.driver import Executor, ExecutorDriver
from mesostw.model import task as T
from mesostw.model.task import TaskInfo, TaskStatus

log = Logger()

#: SIGTERM to SIGKILL when neither the kill nor the task names a grace period (Mesos 0.21's constant).
DEFAULT_GRACE = 3.0
#: How long to wait for the agent to take the final update before exiting anyway.
EXIT_TIMEOUT = 5.0


@implementer(IReadDescriptor)
class ProcessWatch:
    """Calls ``on_exit(wait_status)`` when a child exits, through a pidfd in the reactor."""

    def __init__(self, reactor: Any, pid: int, on_exit: Any):
        self.reactor = reactor
        self.pid = pid
        self.on_exit = on_exit
        self.fd = os.pidfd_open(pid)
        reactor.addReader(self)

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        self.reactor.removeReader(self)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.fd = -1
        self.on_exit(status)

    def connectionLost(self, reason: Any) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def logPrefix(self) -> str:
        return f"task-process-{self.pid}"


def describe_exit(status: int) -> tuple[int | None, str]:
    """(exit code or None, Mesos's message) for a wait status."""
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return code, f"Command exited with status {code}"
    signum = os.WTERMSIG(status)
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = str(signum)
    return None, f"Command terminated with signal {name}"


class CommandExecutor(Executor):
    """Runs exactly one command task."""

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self.driver: ExecutorDriver | None = None
        self.task: TaskInfo | None = None
        self.pid: int | None = None
        self.killing = False
        self.final: TaskStatus | None = None
        self._escalation: Any = None

    def launchTask(self, driver: Any, task: TaskInfo) -> None:
        self.driver = driver
        if self.task is not None:
            self._send(driver, task.task_id, T.ERROR, "The command executor runs a single task")
            return
        self.task = task
        command = task.command
        if command is None:
            self._finish(driver, T.ERROR, "A command task needs a CommandInfo")
            return
        argv = command.argv()
        program = argv[0] if command.shell else (shutil.which(argv[0]) or argv[0])
        env = dict(os.environ)
        env.update(command.environment)
        try:
            self.pid = os.posix_spawn(program, argv, env, setpgroup=0)
        except OSError as exc:
            self._finish(driver, T.FAILED, f"Failed to launch the command: {exc.strerror}: {program}")
            return
        ProcessWatch(self.reactor, self.pid, self._exited)
        log.info("Forked command at {pid}", pid=self.pid)
        self._send(driver, task.task_id, T.RUNNING)

    def killTask(self, driver: Any, taskId: str, gracePeriod: float | None = None) -> None:
        if self.task is None or taskId != self.task.task_id:
            return
        if self.pid is None:
            if self.final is None:
                self._finish(driver, T.KILLED, "Killed before the command started")
            return
        if self.killing:
            return
        self.killing = True
        grace = gracePeriod if gracePeriod is not None else self.task.kill_grace_period
        grace = DEFAULT_GRACE if grace is None else min(grace, driver.shutdown_grace_period)
        self._signal(signal.SIGTERM)
        self._escalation = self.reactor.callLater(grace, self._signal, signal.SIGKILL)

    def shutdown(self, driver: Any) -> None:
        if self.task is not None and self.pid is not None:
            self.killTask(driver, self.task.task_id, max(driver.shutdown_grace_period - 1.0, 0.0))
        elif self.final is None:
            self.driver = driver
            driver.stop()

    def _signal(self, signum: int) -> None:
        self._escalation = None if signum == signal.SIGKILL else self._escalation
        if self.pid is not None:
            try:
                os.killpg(self.pid, signum)
            except ProcessLookupError:
                pass

    def _exited(self, status: int) -> None:
        if self._escalation is not None and self._escalation.active():
            self._escalation.cancel()
        self._escalation = None
        # The group may still hold the command's children; they go with it.
        self._signal(signal.SIGKILL)
        self.pid = None
        code, message = describe_exit(status)
        if self.killing:
            state = T.KILLED
        elif code == 0:
            state = T.FINISHED
        else:
            state = T.FAILED
        assert self.driver is not None
        self._finish(self.driver, state, message)

    def _send(self, driver: Any, task_id: str, state: str, message: str | None = None) -> TaskStatus:
        status = TaskStatus(task_id, state, message=message)
        driver.sendStatusUpdate(status)
        return status

    def _finish(self, driver: Any, state: str, message: str) -> None:
        assert self.task is not None
        self.final = self._send(driver, self.task.task_id, state, message)
        self.reactor.callLater(EXIT_TIMEOUT, driver.stop)

    def acknowledged(self, driver: Any, status: TaskStatus) -> None:
        if self.final is not None and status.task_id == self.final.task_id and status.terminal:
            driver.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the command executor in this process (environment as an agent sets it)."""
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    executor = CommandExecutor(reactor)
    try:
        driver = ExecutorDriver(executor, reactor=reactor)
    except ValueError as exc:
        print(f"mesos-executor: {exc}", file=sys.stderr)
        return 2
    driver.start().addBoth(lambda _: reactor.stop())
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
