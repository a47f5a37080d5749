"""What the master keeps about each agent and each framework."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import attrs

from mesostw.interfaces import IAgentLink, IFrameworkLink
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Task

#: Mesos's ``--max_completed_frameworks`` and ``--max_completed_tasks_per_framework``.
MAX_COMPLETED_FRAMEWORKS = 50
MAX_COMPLETED_TASKS = 1000


@attrs.define(eq=False)
class AgentRecord:
    """A registered (or recovered, or unreachable) agent."""

    info: AgentInfo
    link: IAgentLink | None
    registered_time: float
    reregistered_time: float | None = None
    connected: bool = True
    active: bool = True
    version: str = ""
    #: task ID -> Task, per framework
    tasks: dict[str, dict[str, Task]] = attrs.field(factory=dict)
    #: (framework ID, executor ID) -> ExecutorInfo of custom executors
    executors: dict[tuple[str, str], ExecutorInfo] = attrs.field(factory=dict)
    offered: Resources = EMPTY

    @property
    def id(self) -> str:
        assert self.info.id is not None
        return self.info.id

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.info.hostname}:{self.info.port}"

    def add_task(self, task: Task) -> None:
        self.tasks.setdefault(task.framework_id, {})[task.task_id] = task

    def remove_task(self, framework_id: str, task_id: str) -> None:
        tasks = self.tasks.get(framework_id)
        if tasks is not None:
            tasks.pop(task_id, None)
            if not tasks:
                del self.tasks[framework_id]

    def all_tasks(self) -> list[Task]:
        return [task for tasks in self.tasks.values() for task in tasks.values()]

    def used_by(self, framework_id: str) -> Resources:
        """Resources held by a framework's live tasks and custom executors here."""
        used = EMPTY
        for task in self.tasks.get(framework_id, {}).values():
            if not task.terminal:
                used = used + task.resources
        for (fid, _), executor in self.executors.items():
            if fid == framework_id:
                used = used + executor.resources
        return used

    def used(self) -> Resources:
        used = EMPTY
        for framework_id in set(self.tasks) | {fid for fid, _ in self.executors}:
            used = used + self.used_by(framework_id)
        return used


@attrs.define(eq=False)
class FrameworkRecord:
    """A framework the master knows, connected or waiting out its failover timeout."""

    info: FrameworkInfo
    link: IFrameworkLink | None
    registered_time: float
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    active: bool = True
    recovered: bool = False
    #: task ID -> Task for tasks not yet acknowledged as terminal
    tasks: dict[str, Task] = attrs.field(factory=dict)
    offers: set[str] = attrs.field(factory=set)
    failover_timer: Any = None
    suppressed: bool = False
    max_completed_tasks: int = MAX_COMPLETED_TASKS
    completed_tasks: deque[Task] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.completed_tasks = deque(maxlen=self.max_completed_tasks)

    @property
    def id(self) -> str:
        assert self.info.id is not None
        return self.info.id

    @property
    def connected(self) -> bool:
        return self.link is not None

    def send(self, event: dict[str, Any]) -> bool:
        """Send an event if connected; the caller decides what a miss means."""
        if self.link is None:
            return False
        self.link.send(event)
        return True


class CompletedFrameworks:
    """Frameworks removed from the cluster, newest last, bounded like Mesos's."""

    def __init__(self, limit: int = MAX_COMPLETED_FRAMEWORKS):
        self._records: OrderedDict[str, FrameworkRecord] = OrderedDict()
        self._limit = limit
        self.ids: set[str] = set()

    def add(self, record: FrameworkRecord) -> None:
        self._records[record.id] = record
        self.ids.add(record.id)
        while len(self._records) > self._limit:
            self._records.popitem(last=False)

    def __contains__(self, framework_id: str) -> bool:
        return framework_id in self.ids

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._records.values())
