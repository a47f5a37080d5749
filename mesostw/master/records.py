"""What the master keeps about each agent and each framework.

A record belongs to its manager (:class:`~mesostw.master.agents.AgentManager`,
:class:`~mesostw.master.frameworks.FrameworkManager`), which alone changes it. The tasks and
custom executors a record shows are read-only views of the
:class:`~mesostw.master.tasks.TaskTracker`'s indexes, which own them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from mesostw.interfaces import IAgentLink, IFrameworkLink
from mesostw.master.marks import Marks
from mesostw.master.tally import ResourceTally
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Task

#: Mesos's ``--max_completed_frameworks`` and ``--max_completed_tasks_per_framework``.
MAX_COMPLETED_FRAMEWORKS = 50
MAX_COMPLETED_TASKS = 1000

_NO_TASKS: Mapping[str, Task] = MappingProxyType({})
_NO_INDEX: Mapping[Any, Any] = MappingProxyType({})


#: The states of a task whose resources are not allocated any more: it ended, or they were given back when
#: its agent became unreachable.
RELEASED_STATES = T.TERMINAL_STATES | {T.UNREACHABLE}


_changes = [0]


def changes() -> int:
    """How many times a field of any agent or framework record was set since this module was loaded (what
    shows records is still valid while this stays the same; a record's construction is not counted)."""
    return _changes[0]


def _changed(record: Any, attribute: Any, value: Any) -> Any:
    _changes[0] += 1
    return value


def _agent_changed(record: AgentRecord, attribute: Any, value: Any) -> Any:
    if record.marks is not None:
        record.marks.agent(record.id)
    return value


def _framework_changed(record: FrameworkRecord, attribute: Any, value: Any) -> Any:
    if record.marks is not None:
        record.marks.framework(record.id)
    return value


#: fields keep their converters and validators; each set counts as a change, and marks the record's agent or
#: framework changed (:mod:`~mesostw.master.marks`)
_ON_SETATTR_AGENT = attrs.setters.pipe(attrs.setters.convert, attrs.setters.validate, _changed, _agent_changed)
_ON_SETATTR_FRAMEWORK = attrs.setters.pipe(attrs.setters.convert, attrs.setters.validate, _changed,
                                           _framework_changed)


def holds_resources(task: Task) -> bool:
    """Whether a task's resources are allocated: live, and not given back when its agent became unreachable."""
    return task.state not in RELEASED_STATES


@attrs.define(eq=False, on_setattr=_ON_SETATTR_AGENT)
class AgentRecord:
    """A registered agent, connected or not (unreachable and removed agents have none)."""

    info: AgentInfo
    link: IAgentLink | None
    registered_time: float
    reregistered_time: float | None = None
    connected: bool = True
    active: bool = True
    version: str = ""
    #: the TaskTracker's indexes of its tasks and of every agent's custom executors (its own under its ID),
    #: which :attr:`tasks` and :attr:`executors` show read-only (a view is made when asked: a master holds
    #: ten thousand records, and most agents have no custom executor)
    _task_index: Mapping[str, Mapping[str, Task]] = attrs.field(default=_NO_INDEX, alias="tasks")
    _executor_index: Mapping[str, Mapping[tuple[str, str], ExecutorInfo]] = attrs.field(default=_NO_INDEX,
                                                                                          alias="executors")
    #: what its live tasks and custom executors hold (the TaskTracker keeps it; None: summed when asked)
    usage: ResourceTally | None = None
    #: its dynamic reservations and persistent volumes (``info.resources`` are its ``--resources``)
    checkpointed: Resources = EMPTY
    #: everything it has: ``info.resources`` with ``checkpointed`` applied
    total: Resources = attrs.field(default=attrs.Factory(lambda self: self.info.resources, takes_self=True))
    #: where its changes are marked (None: nowhere); set once, not itself a change
    marks: Marks | None = attrs.field(default=None, on_setattr=attrs.setters.NO_OP, repr=False, kw_only=True)

    @property
    def id(self) -> str:
        assert self.info.id is not None
        return self.info.id

    @property
    def tasks(self) -> Mapping[str, Mapping[str, Task]]:
        """framework ID -> task ID -> Task (a view of the TaskTracker's index)"""
        return MappingProxyType(self._task_index)

    @property
    def executors(self) -> Mapping[tuple[str, str], ExecutorInfo]:
        """(framework ID, executor ID) -> ExecutorInfo of custom executors (a view of the TaskTracker's index)"""
        return MappingProxyType(self._executor_index.get(self.id, _NO_INDEX))

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.info.hostname}:{self.info.port}"

    def reachable_link(self) -> IAgentLink | None:
        """The link to send the agent messages on, or None while it is disconnected."""
        return self.link if self.connected else None

    def all_tasks(self) -> list[Task]:
        return [task for tasks in self.tasks.values() for task in tasks.values()]

    def used_by(self, framework_id: str) -> Resources:
        """Resources held by a framework's live tasks and custom executors here."""
        used = EMPTY
        for task in self.tasks.get(framework_id, _NO_TASKS).values():
            if holds_resources(task):
                used = used + task.resources
        for (fid, _), executor in self.executors.items():
            if fid == framework_id:
                used = used + executor.resources
        return used

    def used(self) -> Resources:
        """Resources held by live tasks and custom executors here."""
        if self.usage is not None:
            return self.usage.total()
        used = EMPTY
        for framework_id in set(self.tasks) | {fid for fid, _ in self.executors}:
            used = used + self.used_by(framework_id)
        return used


@attrs.define(eq=False, on_setattr=_ON_SETATTR_FRAMEWORK)
class FrameworkRecord:
    """A framework the master knows, connected or waiting out its failover timeout."""

    info: FrameworkInfo
    link: IFrameworkLink | None
    registered_time: float
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    active: bool = True
    recovered: bool = False
    failover_timer: Any = None
    suppressed: bool = False
    #: the principal that proved it subscribed this framework (None: unauthenticated); it alone may
    #: subscribe with this ID again, and ACLs judge the framework's calls by it
    principal: str | None = None
    #: task ID -> Task for tasks not yet acknowledged as terminal (a view of the TaskTracker's index)
    tasks: Mapping[str, Task] = attrs.field(factory=lambda: MappingProxyType({}))
    #: the latest tasks that left the indexes (the TaskTracker appends)
    completed_tasks: deque[Task] = attrs.field(factory=lambda: deque(maxlen=MAX_COMPLETED_TASKS))
    #: where its changes are marked (None: nowhere); set once, not itself a change
    marks: Marks | None = attrs.field(default=None, on_setattr=attrs.setters.NO_OP, repr=False, kw_only=True)

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

    def cancel_failover(self) -> None:
        if self.failover_timer is not None and self.failover_timer.active():
            self.failover_timer.cancel()
        self.failover_timer = None


class CompletedFrameworks:
    """Frameworks removed from the cluster, newest last, bounded like Mesos's."""

    def __init__(self, limit: int = MAX_COMPLETED_FRAMEWORKS):
        self._records: OrderedDict[str, FrameworkRecord] = OrderedDict()
        self._limit = limit
        #: every removed framework's ID (unbounded: a removed framework may never come back)
        self.ids: set[str] = set()

    def add(self, record: FrameworkRecord) -> None:
        self._records[record.id] = record
        self.ids.add(record.id)
        while len(self._records) > self._limit:
            self._records.popitem(last=False)

    def __contains__(self, framework_id: object) -> bool:
        return framework_id in self.ids

    def get(self, framework_id: str) -> FrameworkRecord | None:
        """The record of a removed framework still kept, or None."""
        return self._records.get(framework_id)

    def __iter__(self) -> Iterator[FrameworkRecord]:
        return iter(self._records.values())
