"""The agent's checkpoint: what a restarted agent needs to take back its executors (Mesos's ``meta/``).

Written through an :class:`~mesostw.interfaces.IStateStore` (a file store in ``<work_dir>/meta``:
a snapshot and a checksummed journal, each commit fsync'd) with Mesos's semantics rather than its
file layout::

    format                                   the layout's version
    boot_id                                  the host's boot when the agent last ran
    agent                                    AgentInfo, with the agent's ID
    resources                                its checkpointed resources (dynamic reservations and
                                             persistent volumes), kept whatever becomes of its ID
    containers/<container>                   ContainerRecord of every running container
    frameworks/<f>/info                      FrameworkInfo            } only for frameworks that
    frameworks/<f>/executors/<e>/info        executor and container   } checkpoint
    .../tasks/<t>/info                       TaskInfo
    .../tasks/<t>/updates/<n>                the task's status updates, in order
    .../tasks/<t>/acked                      how many of them the scheduler acknowledged

Commits are applied in order, so once one is durable every earlier one is: :meth:`Checkpointer.durable`
runs an effect (an acknowledgement to an executor, a launch, forwarding an update) once everything
checkpointed before it is on disk. A failed write is logged and the effect still happens: the
agent keeps running its tasks, it only recovers less should it restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from mesostw.agent.containers import ContainerRecord
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.model.task import TaskInfo, TaskStatus
from mesostw.store import Delete, Put, dump

log = Logger()

#: The layout written; a checkpoint of a later format is refused (--strict) or discarded.
FORMAT = 1


class CheckpointError(Exception):
    """The checkpoint cannot be read (whole); the message says what and where."""


@attrs.define
class RecoveredTask:
    info: TaskInfo
    updates: list[TaskStatus] = attrs.field(factory=list)
    acked: int = 0


@attrs.define
class RecoveredExecutor:
    info: ExecutorInfo
    container_id: str
    directory: str
    user: str | None = None
    tasks: dict[str, RecoveredTask] = attrs.field(factory=dict)


@attrs.define
class RecoveredFramework:
    info: FrameworkInfo
    executors: dict[str, RecoveredExecutor] = attrs.field(factory=dict)


@attrs.define
class Checkpoint:
    """Everything read back; ``errors`` lists what could not be (skipped)."""

    agent: AgentInfo | None = None
    boot_id: str | None = None
    #: the checkpointed resources (None: never written)
    resources: Resources | None = None
    frameworks: dict[str, RecoveredFramework] = attrs.field(factory=dict)
    containers: dict[str, ContainerRecord] = attrs.field(factory=dict)
    errors: list[str] = attrs.field(factory=list)


def boot_id(path: str = "/proc/sys/kernel/random/boot_id") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _task_path(framework_id: str, executor_id: str, task_id: str) -> str:
    return f"frameworks/{framework_id}/executors/{executor_id}/tasks/{task_id}"


class Checkpointer:
    """Writes the agent's checkpoint into ``store`` and reads it back."""

    def __init__(self, store: Any):
        self.store = store
        #: fires once the latest commit made is durable (None when none is in flight)
        self._latest: defer.Deferred | None = None
        self._in_flight = 0
        #: (framework, executor, task) -> how many updates of the task are written
        self._updates: dict[tuple[str, str, str], int] = {}
        self.failures = 0

    # -- durability ------------------------------------------------------------------------------

    def _commit(self, operations: list[Any], gates: bool = True) -> None:
        """Write ``operations``; effects passed to :meth:`durable` later wait for them unless ``gates``
        is false (container records: no effect depends on them, and they are durable anyway once any
        later commit is)."""
        marker: defer.Deferred[None] = defer.Deferred()
        if gates:
            self._latest = marker
        self._in_flight += 1

        def written(result: Any) -> None:
            self._in_flight -= 1
            if isinstance(result, Failure):
                self.failures += 1
                log.error("Could not checkpoint ({e}); the agent runs on, but would recover less after a restart",
                          e=result.getErrorMessage())
            if self._latest is marker:
                self._latest = None
            marker.callback(None)

        self.store.commit(operations).addBoth(written)

    def durable(self, effect: Callable[..., Any], *args: Any) -> None:
        """Run ``effect(*args)`` once everything checkpointed so far is durable (at once if it is)."""
        if self._latest is None:
            effect(*args)
        else:
            self._latest.addCallback(_run, effect, args)

    # -- writes ---------------------------------------------------------------------------------

    def agent(self, info: AgentInfo, boot: str) -> None:
        self._commit([Put("format", str(FORMAT).encode()), Put("boot_id", boot.encode()),
                      Put("agent", dump(info.to_json()))])

    def resources(self, resources: Resources) -> None:
        """The agent's checkpointed resources (what the master last gave it)."""
        self._commit([Put("resources", dump(resources.to_json()))])

    def framework(self, info: FrameworkInfo) -> None:
        self._commit([Put(f"frameworks/{info.id}/info", dump(info.to_json()))])

    def executor(self, framework_id: str, info: ExecutorInfo, container_id: str, directory: str,
                 user: str | None) -> None:
        self._commit([Put(f"frameworks/{framework_id}/executors/{info.executor_id}/info",
                          dump({"info": info.to_json(), "container_id": container_id, "directory": directory,
                                "user": user}))])

    def task(self, framework_id: str, executor_id: str, info: TaskInfo) -> None:
        self._commit([Put(_task_path(framework_id, executor_id, info.task_id) + "/info", dump(info.to_json()))])

    def update(self, framework_id: str, executor_id: str, status: TaskStatus) -> None:
        key = (framework_id, executor_id, status.task_id)
        sequence = self._updates.get(key, 0)
        self._updates[key] = sequence + 1
        path = _task_path(*key) + f"/updates/{sequence:09d}"
        self._commit([Put(path, dump(status.to_json()))])

    def acknowledged(self, framework_id: str, executor_id: str, task_id: str, pending: int) -> None:
        """The scheduler acknowledged the head of a task's stream; ``pending`` updates are left."""
        written = self._updates.get((framework_id, executor_id, task_id), 0)
        self._commit([Put(_task_path(framework_id, executor_id, task_id) + "/acked",
                          str(max(0, written - pending)).encode())])

    def forget_task(self, framework_id: str, executor_id: str, task_id: str) -> None:
        self._updates.pop((framework_id, executor_id, task_id), None)
        self._commit([Delete(_task_path(framework_id, executor_id, task_id))])

    def forget_executor(self, framework_id: str, executor_id: str) -> None:
        for key in [k for k in self._updates if k[:2] == (framework_id, executor_id)]:
            del self._updates[key]
        self._commit([Delete(f"frameworks/{framework_id}/executors/{executor_id}")])

    def forget_framework(self, framework_id: str) -> None:
        for key in [k for k in self._updates if k[0] == framework_id]:
            del self._updates[key]
        self._commit([Delete(f"frameworks/{framework_id}")])

    def container(self, record: ContainerRecord) -> None:
        self._commit([Put(f"containers/{record.container_id}", dump(record.to_json()))], gates=False)

    def forget_container(self, container_id: str) -> None:
        self._commit([Delete(f"containers/{container_id}")], gates=False)

    def forget_all(self) -> None:
        """Drop everything but the agent's ID (after killing whatever was recovered)."""
        self._updates.clear()
        self._commit([Delete("frameworks"), Delete("containers")])

    # -- reading --------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def read(self) -> Any:
        """The checkpoint as a :class:`Checkpoint` (its ``errors`` name what could not be read);
        fails with CheckpointError when it was written in a later format."""
        store, out = self.store, Checkpoint()
        version = yield store.get("format")
        if version is not None and int(version or b"0") > FORMAT:
            raise CheckpointError(f"the checkpoint is of format {int(version)}, newer than this agent's {FORMAT}")
        raw = yield store.get("agent")
        if raw is not None:
            out.agent = _parse(raw, AgentInfo.from_json, "agent", out.errors)
        raw = yield store.get("resources")
        if raw is not None:
            out.resources = _parse(raw, Resources.from_json, "resources", out.errors)
        boot = yield store.get("boot_id")
        out.boot_id = boot.decode() if boot is not None else None
        for container_id in (yield store.children("containers")):
            raw = yield store.get(f"containers/{container_id}")
            record = _parse(raw, ContainerRecord.from_json, f"containers/{container_id}", out.errors)
            if record is not None:
                out.containers[container_id] = record
        for framework_id in (yield store.children("frameworks")):
            framework = yield self._read_framework(framework_id, out.errors)
            if framework is not None:
                out.frameworks[framework_id] = framework
        return out

    @defer.inlineCallbacks
    def _read_framework(self, framework_id: str, errors: list[str]) -> Any:
        store, base = self.store, f"frameworks/{framework_id}"
        info = _parse((yield store.get(base + "/info")), FrameworkInfo.from_json, base + "/info", errors)
        if info is None:
            return None
        framework = RecoveredFramework(info)
        for executor_id in (yield store.children(base + "/executors")):
            path = f"{base}/executors/{executor_id}"
            record = _parse((yield store.get(path + "/info")), _executor_record, path + "/info", errors)
            if record is None:
                continue
            for task_id in (yield store.children(path + "/tasks")):
                task = yield self._read_task(framework_id, executor_id, task_id, errors)
                if task is not None:
                    record.tasks[task_id] = task
            framework.executors[executor_id] = record
        return framework

    @defer.inlineCallbacks
    def _read_task(self, framework_id: str, executor_id: str, task_id: str, errors: list[str]) -> Any:
        store, path = self.store, _task_path(framework_id, executor_id, task_id)
        info = _parse((yield store.get(path + "/info")), TaskInfo.from_json, path + "/info", errors)
        if info is None:
            return None
        task = RecoveredTask(info)
        names = yield store.children(path + "/updates")
        for name in names:
            status = _parse((yield store.get(f"{path}/updates/{name}")), TaskStatus.from_json,
                            f"{path}/updates/{name}", errors)
            if status is not None:
                task.updates.append(status)
        if names:
            self._updates[(framework_id, executor_id, task_id)] = int(names[-1]) + 1
        acked = yield store.get(path + "/acked")
        task.acked = int(acked) if acked is not None and acked.isdigit() else 0
        return task


def _run(_: Any, effect: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Run a deferred effect; one that fails is logged and does not keep later ones from running."""
    try:
        effect(*args)
    except Exception:  # noqa: BLE001 - an effect's bug must not stall every effect after it
        log.failure("An effect waiting for the checkpoint failed")


def _executor_record(data: Any) -> RecoveredExecutor:
    if not isinstance(data, dict) or not isinstance(data.get("container_id"), str):
        raise ValueError("expected {info, container_id, directory, user}")
    return RecoveredExecutor(ExecutorInfo.from_json(data["info"]), data["container_id"], str(data["directory"]),
                             data.get("user"))


def _parse(raw: bytes | None, parse: Callable[[Any], Any], where: str, errors: list[str]) -> Any:
    if raw is None:
        errors.append(f"{where}: missing")
        return None
    try:
        return parse(json.loads(raw))
    except (ValueError, TypeError, KeyError) as exc:
        errors.append(f"{where}: {exc}")
        return None
