"""The POSIX containerizer: executors as plain processes in their sandboxes.

Executors are forked by the launcher process (:mod:`mesostw.agent.launcher`);
the built-in command executor runs from the launcher's preloaded code, any
other executor's command is exec'd through ``/bin/sh -c``.
"""

from __future__ import annotations

import os
import pwd
import signal
import time
from typing import Any

import attrs
import psutil
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.agent.launcher import Launcher
from mesostw.agent.paths import create_sandbox
from mesostw.agent.state import COMMAND_EXECUTOR
from mesostw.interfaces import IContainerizer
from mesostw.model.info import ExecutorInfo, FrameworkInfo

log = Logger()


@attrs.define
class Container:
    id: str
    directory: str
    pid: int | None = None
    exited: defer.Deferred = attrs.field(factory=defer.Deferred)
    resources: Any = None


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


#: A sandbox is its executor's user's alone (group may read): other tasks on the agent cannot look in.
SANDBOX_MODE = 0o750
#: The executor's stdout and stderr, created here, before the launcher opens them as root.
LOG_MODE = 0o640


def _give_sandbox(directory: str, user: str | None) -> None:
    """Make the sandbox and its logs private to the task's user: owned by it (when the agent may
    give them away, i.e. runs as root), mode 0750 and 0640. An unknown user fails later, in the launcher."""
    uid = gid = -1
    if user and os.getuid() == 0:
        try:
            entry = pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        except KeyError:
            pass
    for name in ("stdout", "stderr"):
        fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, LOG_MODE)
        try:
            os.fchmod(fd, LOG_MODE)
            if uid != -1:
                os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
    if uid != -1:
        os.chown(directory, uid, gid)
    os.chmod(directory, SANDBOX_MODE)


@implementer(IContainerizer)
class PosixContainerizer:
    """Runs each executor as a process tree rooted in its own session."""

    def __init__(self, launcher: Launcher):
        self.launcher = launcher
        self.containers: dict[str, Container] = {}

    def launch(self, container_id: str, executor_info: ExecutorInfo, framework_info: FrameworkInfo,
               directory: str, environment: dict[str, str], user: str | None) -> defer.Deferred:
        create_sandbox(directory)
        _give_sandbox(directory, user)
        # The launcher's child creates these when it opens them.
        stdout, stderr = os.path.join(directory, "stdout"), os.path.join(directory, "stderr")
        container = Container(container_id, directory, resources=executor_info.resources)
        self.containers[container_id] = container
        command = executor_info.command
        if command is not None and command.value == COMMAND_EXECUTOR:
            d = self.launcher.launch("command-executor", [], environment, directory, stdout, stderr, user)
        elif command is not None:
            d = self.launcher.launch("exec", command.argv(), environment, directory, stdout, stderr, user)
        else:
            return defer.fail(ValueError("the executor has no command"))
        d.addCallback(self._started, container)
        d.addErrback(self._failed, container)
        return d

    def _started(self, pid: int, container: Container) -> int:
        container.pid = pid
        self.launcher.wait(pid).chainDeferred(container.exited)
        return pid

    def _failed(self, failure: Any, container: Container) -> Any:
        self.containers.pop(container.id, None)
        return failure

    def wait(self, container_id: str) -> defer.Deferred:
        container = self.containers.get(container_id)
        if container is None:
            return defer.succeed(None)
        d: defer.Deferred[int | None] = defer.Deferred()

        def done(status: Any) -> Any:
            self.containers.pop(container_id, None)
            d.callback(status)
            return status

        container.exited.addBoth(done)
        return d

    def destroy(self, container_id: str) -> defer.Deferred:
        container = self.containers.get(container_id)
        if container is None or container.pid is None:
            return defer.succeed(None)
        groups = set()
        for proc in process_tree(container.pid):
            try:
                groups.add(os.getpgid(proc.pid))
                proc.kill()
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return container.exited

    def usage(self, container_id: str) -> dict[str, Any]:
        """ResourceStatistics of the executor's process tree, from psutil."""
        container = self.containers.get(container_id)
        stats: dict[str, Any] = {"timestamp": time.time()}
        if container is None or container.pid is None:
            return stats
        user = system = rss = 0.0
        for proc in process_tree(container.pid):
            try:
                times = proc.cpu_times()
                user += times.user + times.children_user
                system += times.system + times.children_system
                rss += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        stats.update(cpus_user_time_secs=user, cpus_system_time_secs=system, mem_rss_bytes=int(rss))
        if container.resources is not None:
            cpus = container.resources.scalar("cpus")
            mem = container.resources.scalar("mem")
            if cpus:
                stats["cpus_limit"] = cpus
            if mem:
                stats["mem_limit_bytes"] = int(mem * 1024 * 1024)
        return stats
