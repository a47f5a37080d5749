"""The containerizer: executors as processes in containers, confined by a list of isolators.

A launch creates the sandbox, fetches the executor's URIs into it (:mod:`mesostw.agent.fetcher`),
lets every isolator prepare the container (cgroups, disk accounting) and has the launcher
(:mod:`mesostw.agent.launcher`) fork the executor into it. A container ends as a whole: when its
executor exits, when it is destroyed, or when an isolator reports a limitation (an OOM kill, a
sandbox over its disk), every process left in it is killed (the containment: the executor's
process tree and session under ``posix``, its frozen cgroups under ``cgroups``) before
:meth:`Containerizer.wait` fires, so nothing of a task outlives what the master counts as free.
"""

from __future__ import annotations

import os
import pwd
import time
from typing import Any

import attrs
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.agent.containers import ContainerRecord, Limitation, Termination, same_process, start_time
from mesostw.agent.isolation import PosixContainment, PosixIsolator
from mesostw.agent.launcher import Launcher
from mesostw.agent.paths import create_sandbox
from mesostw.agent.state import COMMAND_EXECUTOR, DEFAULT_EXECUTOR
from mesostw.agent.volumes import VolumeError, Volumes
from mesostw.interfaces import IContainerizer
from mesostw.model.info import ExecutorInfo, FrameworkInfo
from mesostw.model.resources import Resources

log = Logger()

#: The executors the launcher runs itself (its modes), by the command value that names them.
BUILTIN = {COMMAND_EXECUTOR: "command-executor", DEFAULT_EXECUTOR: "default-executor"}

#: How often running containers are checked for limitations (OOM kills, disk quotas).
WATCH_INTERVAL = 1.0


@attrs.define(eq=False)
class Container:
    id: str
    directory: str
    framework_id: str
    executor_id: str
    user: str | None = None
    resources: Resources = attrs.field(factory=Resources)
    pid: int | None = None
    started: float | None = None
    status: int | None = None
    limitation: Limitation | None = None
    #: fires once the executor process is known to have ended
    exited: defer.Deferred = attrs.field(factory=defer.Deferred)
    #: the destruction under way, once started
    destroying: defer.Deferred | None = None
    terminated: defer.Deferred = attrs.field(factory=defer.Deferred)

    def record(self) -> ContainerRecord:
        return ContainerRecord(self.id, self.framework_id, self.executor_id, self.directory, self.pid,
                               self.started, self.user, self.resources)


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
class Containerizer:
    """Containers made by ``launcher`` and confined by ``isolators``; ``containment`` kills them whole."""

    def __init__(self, launcher: Launcher, isolators: list[Any] | None = None, containment: Any = None,
                 clock: Any = None, fetcher: Any = None, watch_interval: float = WATCH_INTERVAL,
                 volumes: Volumes | None = None):
        self.launcher = launcher
        #: links the persistent volumes a container's tasks use into its sandbox (None: no volumes)
        self.volumes = volumes
        self.clock = clock if clock is not None else launcher.reactor
        self.isolators = isolators if isolators is not None else [PosixIsolator()]
        self.containment = containment if containment is not None else PosixContainment(self.clock)
        self.fetcher = fetcher
        self.containers: dict[str, Container] = {}
        self._watch = task.LoopingCall(self._check_limits)
        self._watch.clock = self.clock
        self.watch_interval = watch_interval

    # -- recovery ------------------------------------------------------------------------------

    def recover(self, records: Any) -> defer.Deferred:
        alive, live_records = set(), []
        for record in records:
            container = Container(record.container_id, record.directory, record.framework_id, record.executor_id,
                                  record.user, record.resources, record.pid, record.started)
            self.containers[container.id] = container
            if same_process(record.pid, record.started):
                alive.add(container.id)
                live_records.append(record)
                assert record.pid is not None
                self.launcher.watch(record.pid, record.started).addBoth(self._exited, container)
            else:
                self._exited(None, container)
        for isolator in self.isolators:
            isolator.recover(live_records)
        for isolator in self.isolators:
            for orphan in getattr(isolator, "orphans", lambda known: [])(set(self.containers)):
                log.info("Destroying container {id}, left by an earlier run and unknown to this one", id=orphan)
                self.containment.kill(orphan, None, None).addErrback(self._orphan_failed, orphan)
        self._start_watching()
        return defer.succeed(alive)

    def _orphan_failed(self, failure: Any, container_id: str) -> None:
        log.failure("Could not destroy the orphan container {id}", failure, id=container_id)

    # -- launching -----------------------------------------------------------------------------

    def launch(self, container_id: str, executor_info: ExecutorInfo, framework_info: FrameworkInfo,
               directory: str, environment: dict[str, str], user: str | None,
               resources: Resources | None = None, preload: tuple[str, ...] = (),
               native: bool = False) -> defer.Deferred:
        """See :class:`IContainerizer`; a built-in executor imports what ``preload`` names before it switches
        to ``user`` (see :meth:`Launcher.launch`); the command executor is the native one when ``native``."""
        command = executor_info.command
        if command is None:
            return defer.fail(ValueError("the executor has no command"))
        create_sandbox(directory)
        _give_sandbox(directory, user)
        container = Container(container_id, directory, framework_info.id or "", executor_info.executor_id, user,
                              resources if resources is not None else executor_info.resources)
        if self.volumes is not None:
            try:
                self.volumes.link(directory, container.resources)
            except VolumeError as exc:
                return defer.fail(exc)
        self.containers[container_id] = container
        if self.fetcher is not None and command.uris:
            d = self.fetcher.fetch(command.uris, directory, user)
        else:
            d = defer.succeed(None)
        d.addCallback(lambda _: self._start(container, BUILTIN.get(command.value or ""), command.argv(),
                                            environment, user, preload, native))
        d.addErrback(self._launch_failed, container)
        return d

    def _start(self, container: Container, builtin: str | None, argv: list[str], environment: dict[str, str],
               user: str | None, preload: tuple[str, ...] = (), native: bool = False) -> defer.Deferred:
        settings: dict[str, Any] = {}
        for isolator in self.isolators:
            settings.update(isolator.prepare(container.id, container.directory, container.resources))
        # The launcher's child creates these when it opens them.
        stdout = os.path.join(container.directory, "stdout")
        stderr = os.path.join(container.directory, "stderr")
        mode = builtin or "exec"
        extra: dict[str, Any] = {"preload": list(preload)} if preload and builtin else {}
        if native and builtin == "command-executor":
            extra["native"] = True
        d = self.launcher.launch(mode, [] if builtin else argv, environment, container.directory, stdout, stderr,
                                 user, cgroups=settings.get("cgroups"), **extra)
        d.addCallback(self._started, container)
        return d

    def _started(self, pid: int, container: Container) -> int:
        container.pid = pid
        container.started = start_time(pid)
        for isolator in self.isolators:
            isolator.isolate(container.id, pid)
        self.launcher.wait(pid).addBoth(self._exited, container)
        self._start_watching()
        return pid

    def _launch_failed(self, failure: Any, container: Container) -> Any:
        self.containers.pop(container.id, None)
        d = self.containment.kill(container.id, None, None) if container.pid is None else defer.succeed(None)
        d.addBoth(lambda _: self._cleanup(container))
        return failure

    # -- the container's end ---------------------------------------------------------------------

    def _exited(self, status: Any, container: Container) -> None:
        if not container.exited.called:
            container.status = status if isinstance(status, int) else None
            container.exited.callback(None)
        self._destroy(container)

    def destroy(self, container_id: str) -> defer.Deferred:
        container = self.containers.get(container_id)
        if container is None:
            return defer.succeed(None)
        return self._destroy(container)

    def _destroy(self, container: Container) -> defer.Deferred:
        """Kill whatever is left of the container, wait for its executor to be reaped, clean up."""
        if container.destroying is None:
            # Set before killing: the kill may end the executor at once, which destroys again.
            container.destroying = destroying = defer.Deferred[None]()
            kill = self.containment.kill(container.id, container.pid, container.started)
            kill.addErrback(lambda f: log.failure("Could not kill every process of container {id}", f, id=container.id))
            kill.addCallback(lambda _: container.exited)
            kill.addCallback(lambda _: self._finished(container))
            kill.chainDeferred(destroying)
        return _follow(container.terminated)

    def _finished(self, container: Container) -> None:
        if self.containers.get(container.id) is container:
            del self.containers[container.id]
        self._cleanup(container)
        if not self.containers and self._watch.running:
            self._watch.stop()
        container.terminated.callback(Termination(container.status, container.limitation))

    def _cleanup(self, container: Container) -> None:
        for isolator in self.isolators:
            try:
                isolator.cleanup(container.id)
            except OSError as exc:
                log.warn("Cleaning up container {id}: {e}", id=container.id, e=exc)

    def wait(self, container_id: str) -> defer.Deferred:
        container = self.containers.get(container_id)
        if container is None:
            return defer.succeed(Termination())
        return _follow(container.terminated)

    # -- limits ------------------------------------------------------------------------------------

    def _start_watching(self) -> None:
        if self.containers and not self._watch.running:
            self._watch.start(self.watch_interval, now=False)

    def _check_limits(self) -> None:
        for container in list(self.containers.values()):
            if container.destroying is not None or container.pid is None:
                continue
            limitation = self.limitation(container.id)
            if limitation is not None:
                log.info("Container {id}: {m}; destroying it", id=container.id, m=limitation.message)
                self._destroy(container)

    def limitation(self, container_id: str) -> Limitation | None:
        container = self.containers.get(container_id)
        if container is None:
            return None
        if container.limitation is None:
            for isolator in self.isolators:
                try:
                    found = isolator.limitation(container_id)
                except OSError:
                    found = None
                if found is not None:
                    container.limitation = found
                    break
        return container.limitation

    # -- queries and updates ---------------------------------------------------------------------

    def update(self, container_id: str, resources: Resources) -> None:
        container = self.containers.get(container_id)
        if container is None or container.destroying is not None:
            return
        container.resources = resources
        if self.volumes is not None:
            try:
                self.volumes.link(container.directory, resources)
            except VolumeError as exc:
                log.warn("Cannot give container {id} its volumes: {e}", id=container_id, e=exc)
        for isolator in self.isolators:
            try:
                isolator.update(container_id, resources)
            except OSError as exc:
                log.warn("Cannot update container {id} to {r}: {e}", id=container_id, r=resources, e=exc)

    def usage(self, container_id: str) -> dict[str, Any]:
        """ResourceStatistics of a container, from every isolator."""
        stats: dict[str, Any] = {"timestamp": time.time()}
        if container_id not in self.containers:
            return stats
        for isolator in self.isolators:
            try:
                stats.update(isolator.usage(container_id))
            except OSError:
                continue
        return stats

    def record(self, container_id: str) -> ContainerRecord | None:
        container = self.containers.get(container_id)
        return container.record() if container is not None and container.pid is not None else None

    def stop(self) -> None:
        if self._watch.running:
            self._watch.stop()
        for isolator in self.isolators:
            stop = getattr(isolator, "stop", None)
            if stop is not None:
                stop()


def _follow(source: defer.Deferred) -> defer.Deferred:
    """A new Deferred firing with ``source``'s result, leaving ``source``'s own chain as it was."""
    d: defer.Deferred[Any] = defer.Deferred()

    def relay(result: Any) -> Any:
        d.callback(result)
        return result

    source.addBoth(relay)
    return d


def PosixContainerizer(launcher: Launcher, fetcher: Any = None) -> Containerizer:
    """A containerizer with POSIX isolation: no limits, the executor's process tree and session as the container."""
    return Containerizer(launcher, fetcher=fetcher)
