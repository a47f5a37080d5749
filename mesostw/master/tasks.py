"""Every task the master knows, in one owner: both indexes, the transitions and the resources."""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from twisted.logger import Logger

from mesostw.interfaces import IAllocator
from mesostw.master.events import MasterEvents
from mesostw.master.marks import Marks
from mesostw.master.records import MAX_COMPLETED_TASKS, RELEASED_STATES, holds_resources
from mesostw.master.tally import ResourceTally
from mesostw.model import task as T
from mesostw.model.info import ExecutorInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Task, TaskInfo, TaskStatus

log = Logger()

_NO_COUNTS: dict[str, int] = {}
#: the custom executors of an agent that has none (shared by the ten thousand agents of a large cluster)
_NO_EXECUTORS: Mapping[tuple[str, str], ExecutorInfo] = MappingProxyType({})


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

    What the state endpoints and metrics show of the whole is kept as it changes rather than summed
    on every read: what live tasks and executors hold on each agent, for each framework and in all
    (:class:`~mesostw.master.tally.ResourceTally`), and how many indexed tasks are in each state, in
    all and on each agent. Every change of an indexed task goes through :meth:`_uncount` before and
    :meth:`_count` after it; :meth:`problems` checks the sums against a recount.
    """

    def __init__(self, allocator: IAllocator, metrics: Counter[str], max_completed: int = MAX_COMPLETED_TASKS,
                 events: MasterEvents | None = None, marks: Marks | None = None):
        self._allocator = allocator
        #: where the agents and frameworks whose tasks, counts or holdings change are marked (records mark theirs
        #: there too: their managers give them this one)
        self.marks = marks if marks is not None else Marks()
        self._events = events if events is not None else MasterEvents(None)
        self._metrics = metrics
        self._max_completed = max_completed
        #: framework ID -> task ID -> Task
        self._by_framework: dict[str, dict[str, Task]] = {}
        #: agent ID -> framework ID -> task ID -> Task
        self._by_agent: dict[str, dict[str, dict[str, Task]]] = {}
        #: agent ID -> (framework ID, executor ID) -> ExecutorInfo; its keys are the agents that have a record
        #: (tracked, not yet released), whose task index stays even when empty. An agent without custom
        #: executors (most) has the shared :data:`_NO_EXECUTORS`, replaced by a dict of its own with the first.
        self._executors: dict[str, Mapping[tuple[str, str], ExecutorInfo]] = {}
        self._completed: dict[str, deque[Task]] = {}
        #: what the completed tasks are, counted as they join and leave the histories: agent ID -> task state ->
        #: how many, agent ID -> framework ID -> how many; the same for each framework (by state, by agent)
        self._done_states_on: dict[str, Counter[str]] = {}
        self._done_frameworks_on: dict[str, Counter[str]] = {}
        self._done_states_of: dict[str, Counter[str]] = {}
        self._done_agents_of: dict[str, Counter[str]] = {}
        #: what the live tasks and the executors hold: on each agent, for each framework, in all
        self._used_on: dict[str, ResourceTally] = {}
        self._used_by: dict[str, ResourceTally] = {}
        self._used = ResourceTally()
        #: task state -> how many indexed tasks are in it; the same on each agent
        self._states: Counter[str] = Counter()
        self._agent_states: dict[str, Counter[str]] = {}
        #: framework ID -> task state -> how many of its indexed tasks are in it; agent ID -> how many are there
        self._framework_states: dict[str, Counter[str]] = {}
        self._framework_agents: dict[str, Counter[str]] = {}
        #: framework ID -> how many times an agent joined or left the agents where its indexed or completed tasks are
        self._agent_set_changes: dict[str, int] = {}
        #: agent ID -> how many times what is counted there changed (a cache of what shows it is still valid
        #: while this stays the same)
        self._agent_changes: dict[str, int] = {}
        #: how many times anything counted, held or completed changed, on any agent or framework
        self.changes = 0

    # -- indexes and the views records show ----------------------------------------------

    def track_framework(self, framework_id: str) -> tuple[Mapping[str, Task], deque[Task]]:
        """Index a framework's tasks; returns its tasks (read-only) and its completed tasks, for its record."""
        tasks = self._by_framework.setdefault(framework_id, {})
        completed = self._completed.get(framework_id)
        if completed is None:
            completed = self._completed[framework_id] = deque(maxlen=self._max_completed)
        return MappingProxyType(tasks), completed

    def track_agent(self, agent_id: str) -> tuple[Mapping[str, Mapping[str, Task]],
                                                   Mapping[str, Mapping[tuple[str, str], ExecutorInfo]], ResourceTally]:
        """Index an agent's tasks and executors; returns its task index, the executors of every agent (its
        own under its ID) and what they hold, for its record (which shows them read-only and never changes
        them)."""
        tasks = self._by_agent.setdefault(agent_id, {})
        self._executors.setdefault(agent_id, _NO_EXECUTORS)
        return tasks, self._executors, self._tally_on(agent_id)

    def _own_executors(self, agent_id: str) -> dict[tuple[str, str], ExecutorInfo]:
        """The agent's executors as a dict of its own (made, and the agent tracked, with its first)."""
        executors = self._executors.get(agent_id)
        if not isinstance(executors, dict):
            executors = self._executors[agent_id] = {}
        return executors

    def _shrink_executors(self, agent_id: str) -> None:
        """The agent's last executor ended: it shares :data:`_NO_EXECUTORS` again (it stays tracked)."""
        if not self._executors.get(agent_id, _NO_EXECUTORS):
            self._executors[agent_id] = _NO_EXECUTORS

    def release_agent(self, agent_id: str) -> None:
        """The agent has no record any more (unreachable, or gone): forget its executors, and its index
        unless unreachable tasks wait in it for the agent to come back."""
        for (framework_id, _), executor in self._executors.pop(agent_id, {}).items():
            self._executor_held(agent_id, framework_id, executor.resources, -1)
        if not self._by_agent.get(agent_id):
            self._by_agent.pop(agent_id, None)
            self._forget_agent(agent_id)

    def _tally_on(self, agent_id: str) -> ResourceTally:
        tally = self._used_on.get(agent_id)
        if tally is None:
            tally = self._used_on[agent_id] = ResourceTally()
        return tally

    def _forget_agent(self, agent_id: str) -> None:
        """The agent has neither an index nor executors: nothing is counted for it any more."""
        if agent_id not in self._by_agent and agent_id not in self._executors:
            self._used_on.pop(agent_id, None)
            self._agent_states.pop(agent_id, None)
            self._agent_changes.pop(agent_id, None)

    # -- running sums -------------------------------------------------------------------

    def _hold(self, agent_id: str, framework_id: str, resources: Resources, sign: int) -> None:
        """Resources a live task or an executor of ``framework_id`` holds on ``agent_id`` (sign 1),
        or no longer holds (sign -1)."""
        self._agent_changes[agent_id] = self._agent_changes.get(agent_id, 0) + 1
        self.changes += 1
        by = self._used_by.get(framework_id)
        if by is None:
            by = self._used_by[framework_id] = ResourceTally()
        tallies = (self._tally_on(agent_id), by, self._used)
        for tally in tallies:
            if sign > 0:
                tally.add(resources)
            else:
                tally.remove(resources)

    def _executor_held(self, agent_id: str, framework_id: str, resources: Resources, sign: int) -> None:
        """:meth:`_hold` for a custom executor (a task's holdings are marked as it is counted)."""
        self.marks.agent(agent_id)
        self.marks.framework(framework_id)
        self._hold(agent_id, framework_id, resources, sign)

    def _count(self, task: Task, sign: int = 1) -> None:
        """An indexed task, in its current state, joins the sums (sign 1) or leaves them (sign -1)."""
        state, agent_id, framework_id = task.state, task.info.agent_id, task.framework_id
        self._agent_changes[agent_id] = self._agent_changes.get(agent_id, 0) + 1
        self.changes += 1
        self.marks.agent(agent_id)
        self.marks.framework(framework_id)
        _bump(self._states, state, sign)
        for index, key, value in ((self._agent_states, agent_id, state), (self._framework_states, framework_id, state),
                                  (self._framework_agents, framework_id, agent_id)):
            counter = index.get(key)
            if counter is None:
                counter = index[key] = Counter()
            _bump(counter, value, sign)
        on = self._framework_agents[framework_id].get(agent_id, 0)
        if on == (1 if sign > 0 else 0):
            self._agent_set_changes[framework_id] = self._agent_set_changes.get(framework_id, 0) + 1
        if holds_resources(task):
            self._hold(agent_id, framework_id, task.info.resources, sign)

    def _uncount(self, task: Task) -> None:
        self._count(task, -1)

    def _indexed(self, task: Task) -> bool:
        return self._by_framework.get(task.framework_id, {}).get(task.info.task_id) is task

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

    def used_on_agent(self, agent_id: str) -> Resources:
        """What live tasks and custom executors hold on an agent (kept as they change)."""
        tally = self._used_on.get(agent_id)
        return tally.total() if tally is not None else EMPTY

    def used_in_all(self) -> Resources:
        """What live tasks and custom executors hold on every agent together."""
        return self._used.total()

    def count(self, state: str) -> int:
        """How many tasks in the indexes are in ``state``."""
        return self._states.get(state, 0)

    def counts_on(self, agent_id: str) -> Mapping[str, int]:
        """Task state -> how many tasks of an agent's index are in it (read-only)."""
        return MappingProxyType(self._agent_states.get(agent_id, _NO_COUNTS))

    def counts_of(self, framework_id: str) -> Mapping[str, int]:
        """Task state -> how many of a framework's indexed tasks are in it (read-only)."""
        return MappingProxyType(self._framework_states.get(framework_id, _NO_COUNTS))

    def agents_with_tasks(self, framework_id: str) -> Mapping[str, int]:
        """Agent ID -> how many of a framework's indexed tasks are there (read-only)."""
        return MappingProxyType(self._framework_agents.get(framework_id, _NO_COUNTS))

    def changes_on(self, agent_id: str) -> int:
        """A number that changes whenever a task or executor counted on the agent does."""
        return self._agent_changes.get(agent_id, 0)

    def frameworks_on(self, agent_id: str) -> Iterable[str]:
        """The frameworks with indexed tasks on an agent."""
        return self._by_agent.get(agent_id, {}).keys()

    def completed_on(self, agent_id: str) -> tuple[Mapping[str, int], Iterable[str]]:
        """Task state -> how many of the completed tasks (those the frameworks' histories keep) of an agent are in
        it, and the frameworks of those tasks (read-only)."""
        return (MappingProxyType(self._done_states_on.get(agent_id, _NO_COUNTS)),
                self._done_frameworks_on.get(agent_id, _NO_COUNTS).keys())

    def agent_set_changes(self, framework_id: str) -> int:
        """A number that changes whenever an agent joins or leaves those where a framework has indexed or completed
        tasks (:meth:`agents_with_tasks` and those of :meth:`completed_of`)."""
        return self._agent_set_changes.get(framework_id, 0)

    def completed_of(self, framework_id: str) -> tuple[Mapping[str, int], Iterable[str]]:
        """Task state -> how many of a framework's completed tasks are in it, and the agents of those tasks."""
        return (MappingProxyType(self._done_states_of.get(framework_id, _NO_COUNTS)),
                self._done_agents_of.get(framework_id, _NO_COUNTS).keys())

    def used_on(self, agent_id: str, framework_id: str) -> Resources:
        """What a framework's live tasks and custom executors hold on one agent (summed by a tally: the
        same sum as ``+``, without normalizing the ports at each step). Tasks mostly share their
        resources (see ``Resources._shared``): each bag is added once, times the members holding it,
        and a single one is the sum as it is."""
        held: dict[int, list[Any]] = {}  # id of a bag -> [the bag, how many hold it]
        for task in self._by_agent.get(agent_id, {}).get(framework_id, {}).values():
            if task.state not in RELEASED_STATES:  # holds_resources(task), inlined: once per task of a read
                resources = task.info.resources
                if resources:
                    entry = held.get(id(resources))
                    if entry is None:
                        held[id(resources)] = [resources, 1]
                    else:
                        entry[1] += 1
        for (fid, _), executor in self._executors.get(agent_id, {}).items():
            if fid == framework_id and executor.resources:
                entry = held.get(id(executor.resources))
                if entry is None:
                    held[id(executor.resources)] = [executor.resources, 1]
                else:
                    entry[1] += 1
        if len(held) == 1:
            [(resources, times)] = held.values()
            if times == 1:
                return resources  # type: ignore[no-any-return]
        tally = ResourceTally()
        for resources, times in held.values():
            tally.add(resources, times)
        return tally.total()

    def used_by(self, framework_id: str) -> Resources:
        """What a framework's live tasks and custom executors hold on all agents (kept as they change)."""
        tally = self._used_by.get(framework_id)
        return tally.total() if tally is not None else EMPTY

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
        self._uncount(existing)
        if latest is not None:
            existing.record(latest)
        existing.state = reported.state
        existing.status_update_state = reported.status_update_state
        existing.status_update_uuid = reported.status_update_uuid
        self._count(existing)
        self._add(existing)
        if existing.state != previous and existing.statuses:
            self._events.taskUpdated(existing, existing.statuses[-1])
        return existing

    def _add(self, task: Task) -> None:
        framework_id, info = task.framework_id, task.info
        tasks = self._by_framework.setdefault(framework_id, {})
        previous = tasks.get(info.task_id)
        if previous is not None and previous is not task:
            self._unindex(previous)  # a task ID is one task's: the one it named before is forgotten
        if previous is not task:
            tasks[info.task_id] = task
            self._count(task)
        self._by_agent.setdefault(info.agent_id, {}).setdefault(framework_id, {})[info.task_id] = task

    # -- transitions -------------------------------------------------------------------------

    def update(self, task: Task, status: TaskStatus) -> bool:
        """A status update from the task's agent; True when the task turned terminal now (its resources
        went back to the allocator)."""
        was_terminal = task.terminal
        previous = task.statuses[-1] if task.statuses else None
        indexed = self._indexed(task)
        if indexed:
            self._uncount(task)
        task.record(status)
        task.status_update_state = status.state
        task.status_update_uuid = status.uuid
        if indexed:
            self._count(task)
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
        indexed = self._indexed(task)
        if indexed:
            self._uncount(task)
        task.record(status)
        task.status_update_state = state
        if indexed:
            self._count(task)
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
        framework_id, task_id = task.framework_id, task.info.task_id
        tasks = self._by_framework.get(framework_id)
        indexed = tasks is not None and tasks.get(task_id) is task
        if indexed:
            self._uncount(task)  # first: the agent's sums go once its last task leaves its index
        self._drop_from_agent(task)
        if tasks is not None and indexed:
            del tasks[task_id]
            completed = self._completed.get(framework_id)
            if completed is not None and completed.maxlen != 0:
                if len(completed) == completed.maxlen:
                    self._done(completed[0], -1)  # the oldest leaves the bounded history
                completed.append(task.compact())
                self._done(completed[-1], 1)
                self.changes += 1

    def _done(self, task: Task, sign: int) -> None:
        """A completed task joins its framework's history (sign 1) or leaves it (sign -1)."""
        agent_id, framework_id, state = task.info.agent_id, task.framework_id, task.state
        for index, key, value in ((self._done_states_on, agent_id, state),
                                  (self._done_frameworks_on, agent_id, framework_id),
                                  (self._done_states_of, framework_id, state),
                                  (self._done_agents_of, framework_id, agent_id)):
            counter = index.get(key)
            if counter is None:
                counter = index[key] = Counter()
            _bump(counter, value, sign)
            if not counter:
                del index[key]
        if self._done_agents_of.get(framework_id, _NO_COUNTS).get(agent_id, 0) == (1 if sign > 0 else 0):
            self._agent_set_changes[framework_id] = self._agent_set_changes.get(framework_id, 0) + 1
        # (its framework is marked as the task leaves its index, or leaves the list of frameworks with it)
        self.marks.agent(agent_id)

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
                self._forget_agent(agent_id)

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
                self._uncount(task)
                task.record(status)
                self._count(task)
                self._metrics["tasks_killed"] += 1
                self._events.taskUpdated(task, status)
                log.info("Task {task} of framework {framework} on agent {agent} is {state} ({reason}): {message}",
                         task=task.task_id, framework=framework_id, agent=task.agent_id, state=status.state,
                         reason=status.reason, message=status.message)
            self.remove(task)
        self._by_framework.pop(framework_id, None)
        for task in self._completed.pop(framework_id, ()):
            self._done(task, -1)
        self.changes += 1
        for agent_id in [a for a, executors in self._executors.items() if any(f == framework_id for f, _ in executors)]:
            executors = self._own_executors(agent_id)
            for key in [k for k in executors if k[0] == framework_id]:
                self._executor_held(agent_id, framework_id, executors.pop(key).resources, -1)
            self._shrink_executors(agent_id)
        self._used_by.pop(framework_id, None)
        self._framework_states.pop(framework_id, None)
        self._framework_agents.pop(framework_id, None)
        self._agent_set_changes.pop(framework_id, None)

    def _unindex(self, task: Task) -> None:
        tasks = self._by_framework.get(task.framework_id)
        indexed = tasks is not None and tasks.get(task.task_id) is task
        if indexed:
            self._uncount(task)
        self._drop_from_agent(task)
        if tasks is not None and indexed:
            del tasks[task.task_id]

    # -- custom executors ---------------------------------------------------------------------

    def add_executor(self, agent_id: str, executor: ExecutorInfo) -> bool:
        """A framework's custom executor starts on an agent; False when it runs there already."""
        assert executor.framework_id is not None
        executors = self._own_executors(agent_id)
        key = (executor.framework_id, executor.executor_id)
        if key in executors:
            return False
        executors[key] = executor
        self._executor_held(agent_id, executor.framework_id, executor.resources, 1)
        return True

    def remove_executor(self, agent_id: str, framework_id: str, executor_id: str) -> ExecutorInfo | None:
        """An executor ended; returns it (its resources are the caller's to give back), or None."""
        executors = self._executors.get(agent_id)
        executor = executors.pop((framework_id, executor_id), None) if isinstance(executors, dict) else None
        if executor is not None:
            self._executor_held(agent_id, framework_id, executor.resources, -1)
            self._shrink_executors(agent_id)
        return executor

    def reset_executors(self, agent_id: str, executors: Iterable[ExecutorInfo]) -> None:
        """What a re-registering agent reports runs there (executors without a framework are ignored)."""
        known = self._own_executors(agent_id)
        for (framework_id, _), executor in known.items():
            self._executor_held(agent_id, framework_id, executor.resources, -1)
        known.clear()
        for executor in executors:
            if executor.framework_id:
                key = (executor.framework_id, executor.executor_id)
                if key in known:
                    self._executor_held(agent_id, executor.framework_id, known[key].resources, -1)
                known[key] = executor
                self._executor_held(agent_id, executor.framework_id, executor.resources, 1)
        self._shrink_executors(agent_id)

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
        return found + self._sum_problems()

    def _sum_problems(self) -> list[str]:
        """Where the running sums differ from a recount of the indexes."""
        found = []
        states: Counter[str] = Counter()
        agent_states: dict[str, Counter[str]] = {}
        on: dict[str, Resources] = {}
        by: dict[str, Resources] = {}
        for framework_id, tasks in self._by_framework.items():
            for task in tasks.values():
                states[task.state] += 1
                agent_states.setdefault(task.agent_id, Counter())[task.state] += 1
                if holds_resources(task):
                    on[task.agent_id] = on.get(task.agent_id, EMPTY) + task.resources
                    by[framework_id] = by.get(framework_id, EMPTY) + task.resources
        for agent_id, executors in self._executors.items():
            for (framework_id, _), executor in executors.items():
                on[agent_id] = on.get(agent_id, EMPTY) + executor.resources
                by[framework_id] = by.get(framework_id, EMPTY) + executor.resources
        total = EMPTY
        for used in on.values():
            total = total + used
        if states != self._states:
            found.append(f"task states are counted as {dict(self._states)}, not {dict(states)}")
        for framework_id, tasks in self._by_framework.items():
            if Counter(t.state for t in tasks.values()) != self._framework_states.get(framework_id, Counter()):
                found.append(f"task states of framework {framework_id} are miscounted")
            if Counter(t.agent_id for t in tasks.values()) != self._framework_agents.get(framework_id, Counter()):
                found.append(f"agents of framework {framework_id} are miscounted")
        for framework_id in (self._framework_states.keys() | self._framework_agents.keys()) - self._by_framework.keys():
            if self._framework_states.get(framework_id) or self._framework_agents.get(framework_id):
                found.append(f"framework {framework_id} has counted tasks but no index")
        for agent_id in agent_states.keys() | self._agent_states.keys():
            counted, recounted = self._agent_states.get(agent_id, Counter()), agent_states.get(agent_id, Counter())
            if counted != recounted:
                found.append(f"task states on agent {agent_id} are counted as {dict(counted)}, not {dict(recounted)}")
        for agent_id in on.keys() | self._used_on.keys():
            if on.get(agent_id, EMPTY) != self.used_on_agent(agent_id):
                found.append(f"agent {agent_id} is counted as using {self.used_on_agent(agent_id)}, "
                             f"not {on.get(agent_id, EMPTY)}")
        for framework_id in by.keys() | self._used_by.keys():
            if by.get(framework_id, EMPTY) != self.used_by(framework_id):
                found.append(f"framework {framework_id} is counted as using {self.used_by(framework_id)}, "
                             f"not {by.get(framework_id, EMPTY)}")
        if total != self.used_in_all():
            found.append(f"all agents are counted as using {self.used_in_all()}, not {total}")
        return found + self._completed_problems()

    def _completed_problems(self) -> list[str]:
        """Where the counts of the completed tasks differ from a recount of the histories."""
        recounted: tuple[dict[str, Counter[str]], ...] = ({}, {}, {}, {})
        for completed in self._completed.values():
            for task in completed:
                agent_id, framework_id, state = task.agent_id, task.framework_id, task.state
                for index, key, value in zip(recounted, (agent_id, agent_id, framework_id, framework_id),
                                             (state, framework_id, state, agent_id), strict=True):
                    index.setdefault(key, Counter())[value] += 1
        counted = (self._done_states_on, self._done_frameworks_on, self._done_states_of, self._done_agents_of)
        names = ("states on agents", "frameworks on agents", "states of frameworks", "agents of frameworks")
        return [f"completed tasks' {name} are counted as {index}, not {again}"
                for name, index, again in zip(names, counted, recounted, strict=True) if index != again]


def _bump(counter: Counter[str], key: str, sign: int) -> None:
    count = counter.get(key, 0) + sign
    if count:
        counter[key] = count
    else:
        del counter[key]
