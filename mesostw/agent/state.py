"""What an agent keeps about the frameworks and executors it runs."""

from __future__ import annotations

from collections import deque
from typing import Any, Iterator

import attrs

from mesostw.interfaces import IExecutorLink
from mesostw.model.info import ExecutorInfo, FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.model.task import Task, TaskInfo

REGISTERING = "REGISTERING"
RUNNING = "RUNNING"
TERMINATING = "TERMINATING"
TERMINATED = "TERMINATED"

MAX_COMPLETED_EXECUTORS = 150
MAX_COMPLETED_TASKS = 200
MAX_COMPLETED_FRAMEWORKS = 50

#: The command value marking the built-in command executor in an ExecutorInfo.
COMMAND_EXECUTOR = "mesos-executor"
#: The command value the agent gives a DEFAULT executor (task groups) when it launches it.
DEFAULT_EXECUTOR = "mesos-default-executor"
#: What the command executor's container gets on top of its task's resources (Mesos's
#: DEFAULT_EXECUTOR_CPUS and DEFAULT_EXECUTOR_MEM).
COMMAND_EXECUTOR_RESOURCES = Resources.of(cpus=0.1, mem=32)


@attrs.define(eq=False)
class ExecutorState:
    """One run of an executor (one container) and its tasks."""

    info: ExecutorInfo
    framework_id: str
    container_id: str
    directory: str
    user: str | None = None
    state: str = REGISTERING
    link: IExecutorLink | None = None
    pid: int | None = None
    queued: dict[str, TaskInfo] = attrs.field(factory=dict)
    launched: dict[str, Task] = attrs.field(factory=dict)
    terminated: dict[str, Task] = attrs.field(factory=dict)
    completed: deque[Task] = attrs.field(factory=lambda: deque(maxlen=MAX_COMPLETED_TASKS))
    registration_timer: Any = None
    shutdown_timer: Any = None
    killed_by_agent: bool = False
    exit_status: int | None = None
    #: tasks checkpointed by an earlier run that the executor may never have received
    undelivered: set[str] = attrs.field(factory=set)
    #: the task groups among the queued tasks (their IDs), to be delivered each as one LAUNCH_GROUP
    queued_groups: list[tuple[str, ...]] = attrs.field(factory=list)

    @property
    def id(self) -> str:
        return self.info.executor_id

    @property
    def is_command_executor(self) -> bool:
        return self.info.command is not None and self.info.command.value == COMMAND_EXECUTOR

    @property
    def is_default_executor(self) -> bool:
        """Mesos's default executor, which runs task groups (a DEFAULT executor the framework gave, not the
        agent's command executor)."""
        return self.info.type == "DEFAULT" and not self.is_command_executor

    def find(self, task_id: str) -> Task | None:
        return self.launched.get(task_id) or self.terminated.get(task_id)

    def live_tasks(self) -> Iterator[Task]:
        yield from self.launched.values()

    def idle(self) -> bool:
        return not (self.queued or self.launched or self.terminated)

    def cancel_timers(self) -> None:
        for timer in (self.registration_timer, self.shutdown_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.registration_timer = self.shutdown_timer = None


@attrs.define(eq=False)
class FrameworkState:
    info: FrameworkInfo
    executors: dict[str, ExecutorState] = attrs.field(factory=dict)
    completed_executors: deque[ExecutorState] = attrs.field(
        factory=lambda: deque(maxlen=MAX_COMPLETED_EXECUTORS))
    terminating: bool = False
    #: task ID -> the executor running it, for tasks not yet completed
    task_executors: dict[str, ExecutorState] = attrs.field(factory=dict)

    @property
    def id(self) -> str:
        assert self.info.id is not None
        return self.info.id

    def executor_of(self, task_id: str) -> ExecutorState | None:
        return self.task_executors.get(task_id)
