"""What the planner asks its shell to do: store writes, and actions to take at once or once they are durable.

The planner never performs I/O. For every event it returns :class:`Effects`: the store operations the
event implies (applied atomically), the actions that may happen at once, and the actions that must wait
until those operations are durable (acknowledging a terminal status update, answering the API,
launching a run whose record was just written).
"""

from __future__ import annotations

from typing import Any

import attrs

from mesostw.model.task import TaskInfo, TaskStatus
from mesostw.store import Delete, Operation, Put, dump


@attrs.frozen
class Launch:
    offer_ids: tuple[str, ...]
    tasks: tuple[TaskInfo, ...]


@attrs.frozen
class Decline:
    offer_ids: tuple[str, ...]
    refuse_seconds: float


@attrs.frozen
class Kill:
    task_id: str
    agent_id: str | None = None


@attrs.frozen
class Acknowledge:
    status: TaskStatus


@attrs.frozen
class Revive:
    pass


@attrs.frozen
class Suppress:
    pass


@attrs.frozen
class Reconcile:
    """Ask the master about these task IDs (all of the framework's tasks when empty). ``agent_ids`` says,
    task by task, the agent each was launched on where that is known (None where not): with it the
    master answers for a task at once unless that very agent has yet to re-register after a failover,
    while a task without one waits for every recovering agent."""

    task_ids: tuple[str, ...] = ()
    agent_ids: tuple[str | None, ...] = ()

    def tasks(self) -> list[tuple[str, str | None]]:
        """(task ID, agent ID or None) of each task asked about."""
        agents = self.agent_ids or (None,) * len(self.task_ids)
        return list(zip(self.task_ids, agents, strict=True))


@attrs.frozen
class Notify:
    """Tell a job's owners something (Chronos's notifications): ``event`` is failed, disabled or deleted."""

    event: str
    subject: str
    message: str
    job: dict[str, Any]
    owners: tuple[str, ...]


@attrs.frozen
class Recorded:
    """These runs' records are durable: the planner may launch them (it is called back)."""

    keys: tuple[str, ...]


Action = Launch | Decline | Kill | Acknowledge | Revive | Suppress | Reconcile | Notify | Recorded


@attrs.define
class Effects:
    ops: list[Operation] = attrs.field(factory=list)
    now: list[Action] = attrs.field(factory=list)
    after: list[Action] = attrs.field(factory=list)

    def put(self, path: str, value: Any) -> None:
        self.ops.append(Put(path, dump(value)))

    def delete(self, path: str) -> None:
        self.ops.append(Delete(path))

    def extend(self, other: Effects) -> Effects:
        self.ops.extend(other.ops)
        self.now.extend(other.now)
        self.after.extend(other.after)
        return self

    def __bool__(self) -> bool:
        return bool(self.ops or self.now or self.after)
