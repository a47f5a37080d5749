"""Every task the master knows, in one owner: both indexes, the transitions and the resources."""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from twisted.logger import Logger

from mesostw.interfaces import IAllocator
from mesostw.master.events import MasterEvents
from mesostw.master.records import MAX_COMPLETED_TASKS, holds_resources
from mesostw.model import task as T
from mesostw.model.info import ExecutorInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Task, TaskInfo, TaskStatus

log = Logger()


class KillOutcome(enum.Enum):
    """What became of a request to kill a task."""

    SENT = "sent"
    UNKNOWN_TASK = "unknown task"
    AGENT_NOT_CONNECTED = "agent not connected"
    NOT_AUTHORIZED = "not authorized"


class TaskTracker:
    """The tasks of every framework on every agent, and the custom executors that run them.

    This is the only code that adds or removes a task. Each task is in exactly one framework's index
    and one agent's index (:meth:`problems` checks it): from its launch (or an agent's report of it
    when re-registering) until its terminal update is acknowledged, the master gives up on it, or its
    framework is removed; it then joins its framework's completed tasks. The agent index of an agent
    that became unreachable keeps its partition-aware frameworks' unreachable tasks until it returns.

    Resources go back to the allocator when a task turns terminal or unreachable; a framework's
    removal gives back everything at once through the allocator instead.

    Tasks becoming known and changing state are reported to ``events`` (the operator API's
    TASK_ADDED and TASK_UPDATED), from here only.
    """

    def __init__(self, allocator: IAllocator, metrics: Counter[str], max_completed: int = MAX_COMPLETED_TASKS,
                 events: MasterEvents | None = None):
        self._allocator = allocator
        self._events = events if events is not None else MasterEvents(None)
        self._metrics = metrics
        self._max_completed = max_completed
        #: framework ID -> task ID -> Task
        self._by_framework: dict[str, dict[str, Task]] = {}
        #: agent ID -> framework ID -> task ID -> Task
        self._by_agent: dict[str, dict[str, dict[str, Task]]] = {}
        #: agent ID -> (framework ID, executor ID) -> ExecutorInfo; its keys are the agents that have a record
        #: (tracked, not yet released), whose task index stays even when empty
        self._executors: dict[str, dict[tuple[str, str], ExecutorInfo]] = {}
        self._completed: dict[str, deque[Task]] = {}

    # -- indexes and the views records show ----------------------------------------------

    def track_framework(self, framework_id: str) -> tuple[Mapping[str, Task], deque[Task]]:
        """Index a framework's tasks; returns its tasks (read-only) and its completed tasks, for its record."""
        tasks = self._by_framework.setdefault(framework_id, {})
        completed = self._completed.get(framework_id)
        if completed is None:
            completed = self._completed[framework_id] = deque(maxlen=self._max_completed)
        return MappingProxyType(tasks), completed

    def track_agent(self, agent_id: str) -> tuple[Mapping[str, Mapping[str, Task]],
                                                   Mapping[tuple[str, str], ExecutorInfo]]:
        """Index an agent's tasks and executors; returns both read-only, for its record."""
        tasks = self._by_agent.setdefault(agent_id, {})
        executors = self._executors.setdefault(agent_id, {})
        return MappingProxyType(tasks), MappingProxyType(executors)

    def release_agent(self, agent_id: str) -> None:
        """The agent has no record any more (unreachable, or gone): forget its executors, and its index
        unless unreachable tasks wait in it for the agent to come back."""
        self._executors.pop(agent_id, None)
        if not self._by_agent.get(agent_id):
            self._by_agent.pop(agent_id, None)

    # -- queries ------------------------------------------------------------------------

    def get(self, framework_id: str, task_id: str) -> Task | None:
        tasks = self._by_framework.get(framework_id)
        return tasks.get(task_id) if tasks is not None else None

    def of_framework(self, framework_id: str) -> list[Task]:
        return list(self._by_framework.get(framework_id, {}).values())

    def on_agent(self, agent_id: str) -> list[Task]:
        return [task for tasks in self._by_agent.get(agent_id, {}).values() for task in tasks.values()]

    def agents_of(self, framework_id: str) -> list[str]:
        """The agents where a framework has tasks or custom executors."""
        return [agent_id for agent_id in self._by_agent.keys() | self._executors.keys()
                if framework_id in self._by_agent.get(agent_id, ())
                or any(f == framework_id for f, _ in self._executors.get(agent_id, ()))]

    def executor(self, agent_id: str, framework_id: str, executor_id: str) -> ExecutorInfo | None:
        return self._executors.get(agent_id, {}).get((framework_id, executor_id))

    def executor_ids(self, agent_id: str, framework_id: str) -> tuple[str, ...]:
        return tuple(e for f, e in self._executors.get(agent_id, ()) if f == framework_id)

    def used_on(self, agent_id: str, framework_id: str) -> Resources:
        """What a framework's live tasks and custom executors hold on one agent."""
        used = EMPTY
        for task in self._by_agent.get(agent_id, {}).get(framework_id, {}).values():
            if holds_resources(task):
                used = used + task.resources
        for (fid, _), executor in self._executors.get(agent_id, {}).items():
            if fid == framework_id:
                used = used + executor.resources
        return used

    def used_by(self, framework_id: str) -> Resources:
        """What a framework's live tasks and custom executors hold on all agents."""
        used = EMPTY
        for task in self._by_framework.get(framework_id, {}).values():
            if holds_resources(task):
                used = used + task.resources
        for executors in self._executors.values():
            for (fid, _), executor in executors.items():
                if fid == framework_id:
                    used = used + executor.resources
        return used

    def usage_on(self, agent_id: str) -> dict[str, Resources]:
        """Framework ID -> what it holds on an agent, for frameworks holding anything there."""
        frameworks = self._by_agent.get(agent_id, {}).keys() | {f for f, _ in self._executors.get(agent_id, ())}
        usage = {framework_id: self.used_on(agent_id, framework_id) for framework_id in frameworks}
        return {framework_id: used for framework_id, used in usage.items() if used}

    # -- tasks coming ---------------------------------------------------------------------

    def launch(self, framework_id: str, info: TaskInfo, user: str | None) -> Task:
        """A task the master sends to its agent (``info.agent_id``) now."""
        executor = info.executor
        task = Task(info=info, framework_id=framework_id,
                    executor_id=executor.executor_id if executor is not None else None, user=user)
        self._add(task)
        self._metrics["tasks_staging"] += 1
        self._events.taskAdded(task)
        log.info("Launching task {task} of framework {framework} on agent {agent} with resources {resources}",
                 task=info.task_id, framework=framework_id, agent=info.agent_id, resources=info.resources)
        return task

    def adopt(self, agent_id: str, reported: Task, latest: TaskStatus | None = None) -> Task | None:
        """A task an agent reports as it re-registers: the master's own record of it, brought up to date.

        ``latest`` (for an agent back from unreachable) joins the history of the task the master knew.
        None when the task ID belongs to a live task on another agent, which a report cannot take over.
        """
        existing = self.get(reported.framework_id, reported.task_id)
        if existing is not None and existing.agent_id != agent_id:
            if not existing.terminal:
                return None
            self.remove(existing)  # a terminal task elsewhere no longer holds the ID
            existing = None
        if existing is None:
            self._add(reported)
            self._events.taskAdded(reported)
            return reported
        previous = existing.state
        if latest is not None:
            existing.record(latest)
        existing.state = reported.state
        existing.status_update_state = reported.status_update_state
        existing.status_update_uuid = reported.status_update_uuid
        self._add(existing)
        if existing.state != previous and existing.statuses:
            self._events.taskUpdated(existing, existing.statuses[-1])
        return existing

    def _add(self, task: Task) -> None:
        framework_id, info = task.framework_id, task.info
        self._by_framework.setdefault(framework_id, {})[info.task_id] = task
        self._by_agent.setdefault(info.agent_id, {}).setdefault(framework_id, {})[info.task_id] = task

    # -- transitions -------------------------------------------------------------------------

    def update(self, task: Task, status: TaskStatus) -> bool:
        """A status update from the task's agent; True when the task turned terminal now (its resources
        went back to the allocator)."""
        was_terminal = task.terminal
        previous = task.statuses[-1] if task.statuses else None
        task.record(status)
        task.status_update_state = status.state
        task.status_update_uuid = status.uuid
        if previous is None or previous.state != status.state or previous.healthy != status.healthy:
            self._events.taskUpdated(task, status)  # a new state (or health), as Mesos sends them
        if status.terminal and not was_terminal:
            self._ended(task, status)
            return True
        if status.state == T.RUNNING:
            self._metrics["tasks_started"] += 1
        return False

    def lose(self, task: Task, state: str, message: str, reason: str, now: float) -> TaskStatus:
        """The master gives up on a task (its agent went away or no longer has it): returns the update
        for its framework, without a UUID (nobody acknowledges it). The task leaves both indexes unless
        it is only unreachable."""
        status = TaskStatus(task.task_id, state, message=message, source=T.SOURCE_MASTER, reason=reason,
                            agent_id=task.agent_id, executor_id=task.executor_id, timestamp=now)
        was_terminal = task.terminal
        task.record(status)
        task.status_update_state = state
        self._events.taskUpdated(task, status)
        if not was_terminal:
            self._ended(task, status)
        if state != T.UNREACHABLE:
            self.remove(task)
        return status

    def _ended(self, task: Task, status: TaskStatus) -> None:
        self._metrics[f"tasks_{status.state[5:].lower()}"] += 1
        self._allocator.recoverResources(task.framework_id, task.agent_id, task.resources)
        log.info("Task {task} of framework {framework} on agent {agent} is {state} ({reason}): {message}",
                 task=task.task_id, framework=task.framework_id, agent=task.agent_id, state=status.state,
                 reason=status.reason, message=status.message)

    def remove(self, task: Task) -> None:
        """Take a task out of both indexes into its framework's completed tasks."""
        self._drop_from_agent(task)
        framework_id, task_id = task.framework_id, task.info.task_id
        tasks = self._by_framework.get(framework_id)
        if tasks is not None and tasks.get(task_id) is task:
            del tasks[task_id]
            completed = self._completed.get(framework_id)
            if completed is not None:
                completed.append(task)

    def _drop_from_agent(self, task: Task) -> None:
        framework_id, info = task.framework_id, task.info
        agent_id = info.agent_id
        on_agent = self._by_agent.get(agent_id)
        if on_agent is None:
            return
        tasks = on_agent.get(framework_id)
        if tasks is None or tasks.get(info.task_id) is not task:
            return
        del tasks[info.task_id]
        if not tasks:
            del on_agent[framework_id]
            if not on_agent and agent_id not in self._executors:
                del self._by_agent[agent_id]  # the last task of an agent without a record

    def remove_framework(self, framework_id: str, now: float) -> None:
        """The framework is gone: its live tasks are killed and complete; unreachable ones are dropped
        (they are on no agent the master can reach); its executors are forgotten. The allocator takes
        back its resources as a whole."""
        for task in list(self._by_framework.get(framework_id, {}).values()):
            if task.state == T.UNREACHABLE:
                self._unindex(task)
                continue
            if not task.terminal:
                status = TaskStatus(task.task_id, T.KILLED, message="Framework removed", source=T.SOURCE_MASTER,
                                    reason=T.REASON_FRAMEWORK_REMOVED, agent_id=task.agent_id, timestamp=now)
                task.record(status)
                self._metrics["tasks_killed"] += 1
                self._events.taskUpdated(task, status)
                log.info("Task {task} of framework {framework} on agent {agent} is {state} ({reason}): {message}",
                         task=task.task_id, framework=framework_id, agent=task.agent_id, state=status.state,
                         reason=status.reason, message=status.message)
            self.remove(task)
        self._by_framework.pop(framework_id, None)
        self._completed.pop(framework_id, None)
        for executors in self._executors.values():
            for key in [k for k in executors if k[0] == framework_id]:
                del executors[key]

    def _unindex(self, task: Task) -> None:
        self._drop_from_agent(task)
        tasks = self._by_framework.get(task.framework_id)
        if tasks is not None and tasks.get(task.task_id) is task:
            del tasks[task.task_id]

    # -- custom executors ---------------------------------------------------------------------

    def add_executor(self, agent_id: str, executor: ExecutorInfo) -> bool:
        """A framework's custom executor starts on an agent; False when it runs there already."""
        assert executor.framework_id is not None
        executors = self._executors.setdefault(agent_id, {})
        key = (executor.framework_id, executor.executor_id)
        if key in executors:
            return False
        executors[key] = executor
        return True

    def remove_executor(self, agent_id: str, framework_id: str, executor_id: str) -> ExecutorInfo | None:
        """An executor ended; returns it (its resources are the caller's to give back), or None."""
        return self._executors.get(agent_id, {}).pop((framework_id, executor_id), None)

    def reset_executors(self, agent_id: str, executors: Iterable[ExecutorInfo]) -> None:
        """What a re-registering agent reports runs there (executors without a framework are ignored)."""
        known = self._executors.setdefault(agent_id, {})
        known.clear()
        for executor in executors:
            if executor.framework_id:
                known[(executor.framework_id, executor.executor_id)] = executor

    # -- soundness ------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Where the indexes disagree (nothing when sound): every task is in exactly one framework's index
        and one agent's index, under its own IDs, and no index keeps empty entries."""
        found = []
        in_agents: dict[int, str] = {}
        for agent_id, frameworks in self._by_agent.items():
            for framework_id, tasks in frameworks.items():
                if not tasks:
                    found.append(f"agent {agent_id} keeps an empty index for framework {framework_id}")
                for task_id, task in tasks.items():
                    where = f"task {task_id} of {framework_id} on agent {agent_id}"
                    if (task.agent_id, task.framework_id, task.task_id) != (agent_id, framework_id, task_id):
                        found.append(f"{where} is indexed under another task's IDs")
                    if id(task) in in_agents:
                        found.append(f"{where} is also on agent {in_agents[id(task)]}")
                    in_agents[id(task)] = agent_id
                    if self.get(framework_id, task_id) is not task:
                        found.append(f"{where} is not in its framework's index")
        for framework_id, tasks in self._by_framework.items():
            for task_id, task in tasks.items():
                if (task.framework_id, task.task_id) != (framework_id, task_id):
                    found.append(f"task {task_id} of {framework_id} is indexed under another task's IDs")
                if id(task) not in in_agents:
                    found.append(f"task {task_id} of {framework_id} is on no agent's index")
        return found
