"""The master's side of agents: registration, re-registration, disconnection and loss.

A mixin of :class:`mesostw.master.master.Master`; it shares the master's state.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.interfaces import IAgentLink
from mesostw.master.records import AgentRecord
from mesostw.master.registry import AdmitAgent, MarkUnreachable, RemoveAgent
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo, MasterInfo
from mesostw.model.task import Task, TaskStatus

log = Logger()


class RegistrationRefused(Exception):
    """An agent or framework may not (re-)register; the message says why."""


class AgentLifecycle:
    """Agents joining, returning, disconnecting and being lost."""

    agents: dict[str, AgentRecord]
    metrics: Any
    clock: Any

    def registerAgent(self, link: IAgentLink, info: AgentInfo, version: str = "") -> defer.Deferred:
        """Admit a new agent once the registry holds it; fires with (agent_id, MasterInfo)."""
        self.metrics["messages_register_slave"] += 1
        problem = self._check_agent(info)
        if problem:
            return defer.fail(RegistrationRefused(problem))
        agent_id = self._new_agent_id()
        info = attrs.evolve(info, id=agent_id)
        d = self._persist(AdmitAgent(agent_id, info.to_json()))
        d.addCallback(lambda _: self._admitted(link, info, version))
        return d

    def _admitted(self, link: IAgentLink, info: AgentInfo, version: str) -> tuple[str, MasterInfo]:
        agent_id = info.id
        assert agent_id is not None
        self.admitted.add(agent_id)
        record = AgentRecord(info=info, link=link, registered_time=self.clock.seconds(), version=version)
        self.agents[agent_id] = record
        self.allocator.addAgent(agent_id, info.resources)
        self.health.watch(agent_id, link)
        self.metrics["slave_registrations"] += 1
        log.info("Registered agent {id} at {host}:{port} with {res}", id=agent_id, host=info.hostname,
                 port=info.port, res=str(info.resources))
        self.requestAllocation([agent_id])
        return agent_id, self.info

    def reregisterAgent(self, link: IAgentLink, info: AgentInfo, tasks: list[Task],
                        executors: list[ExecutorInfo], frameworks: list[FrameworkInfo],
                        version: str = "") -> defer.Deferred:
        """Take back an agent that knows its ID, with what it is running; fires with MasterInfo."""
        self.metrics["messages_reregister_slave"] += 1
        problem = self._check_agent(info)
        if problem:
            return defer.fail(RegistrationRefused(problem))
        agent_id = info.id
        assert agent_id is not None
        if agent_id in self.admitted and agent_id not in self.unreachable:
            return defer.succeed(self._readmitted(link, info, tasks, executors, frameworks, version))
        # Unknown here (a registry lost or never kept) or back from unreachable: record it first.
        d = self._persist(AdmitAgent(agent_id, info.to_json()))
        d.addCallback(lambda _: self._readmitted(link, info, tasks, executors, frameworks, version))
        return d

    def _readmitted(self, link: IAgentLink, info: AgentInfo, tasks: list[Task], executors: list[ExecutorInfo],
                    frameworks: list[FrameworkInfo], version: str) -> MasterInfo:
        agent_id = info.id
        assert agent_id is not None
        self.admitted.add(agent_id)
        self.recovered_agents.pop(agent_id, None)
        now = self.clock.seconds()
        for framework_info in frameworks:
            # Learned from the agent: it gets as long to re-subscribe as agents get to come back.
            self.recover_framework(framework_info, max(framework_info.failover_timeout,
                                                       self.config.agent_reregister_timeout))
        record = self.agents.get(agent_id)
        if record is not None:
            self._forget_agent_offers(agent_id)
            self.allocator.removeAgent(agent_id)
            known = record.all_tasks()
            record.info, record.link, record.connected, record.active = info, link, True, True
            record.reregistered_time = now
        else:
            known = []
            record = AgentRecord(info=info, link=link, registered_time=now, reregistered_time=now, version=version)
            self.agents[agent_id] = record
        was_unreachable = self.unreachable.pop(agent_id, None) is not None
        reported = {(t.framework_id, t.task_id) for t in tasks}
        for task in known:
            if (task.framework_id, task.task_id) not in reported and not task.terminal:
                self._lose_task(record, task, "Task was not found on the agent when it re-registered",
                                T.REASON_AGENT_RESTARTED, agent_removed=False)
        record.executors = {}
        for executor in executors:
            if executor.framework_id:
                record.executors[(executor.framework_id, executor.executor_id)] = executor
        doomed: set[str] = set()
        for task in tasks:
            framework = self.frameworks.get(task.framework_id)
            if framework is None:
                doomed.add(task.framework_id)
                continue
            if was_unreachable and not framework.info.partition_aware:
                # Its framework was told TASK_LOST already; Mesos kills such tasks on return.
                link.killTask(task.framework_id, task.task_id)
                continue
            # What the agent says now, not what the master last recorded (e.g. TASK_UNREACHABLE).
            latest = task.statuses[-1] if task.statuses else TaskStatus(task.task_id, task.state, timestamp=now)
            existing = framework.tasks.get(task.task_id)
            if existing is not None and existing.agent_id != agent_id and not existing.terminal:
                # The ID belongs to a live task on another agent: this report cannot take it over.
                log.warn("Agent {a} reports task {t} which runs on agent {b}; ignoring the report",
                         a=agent_id, t=task.task_id, b=existing.agent_id)
                continue
            if existing is not None and existing.agent_id == agent_id:
                if was_unreachable:
                    existing.record(latest)
                existing.state = task.state
                existing.status_update_state = task.status_update_state
                existing.status_update_uuid = task.status_update_uuid
                task = existing
            framework.tasks[task.task_id] = task
            record.add_task(task)
            if was_unreachable and framework.connected:
                framework.send(api.update_event(without_uuid(latest, agent_id)))
        for framework_id in doomed:
            if framework_id in self.completed:
                link.shutdownFramework(framework_id)
        used = {fid: record.used_by(fid) for fid in record.tasks.keys() | {f for f, _ in record.executors}}
        self.allocator.addAgent(agent_id, info.resources, {f: r for f, r in used.items() if r})
        self.health.watch(agent_id, link)
        self.metrics["slave_reregistrations"] += 1
        log.info("Re-registered agent {id} with {n} tasks", id=agent_id, n=len(tasks))
        self.requestAllocation([agent_id])
        return self.info

    def _check_agent(self, info: AgentInfo) -> str | None:
        if not info.hostname:
            return "agent_info.hostname must not be empty"
        scalars = info.resources.scalars()
        if "cpus" not in scalars or "mem" not in scalars:
            return "an agent must offer cpus and mem"
        return None

    def agentDisconnected(self, agent_id: str, link: IAgentLink | None = None) -> None:
        """The agent's connection broke: stop offering it and lose tasks of frameworks that
        do not checkpoint (as Mesos does), then wait for it or for its ping timeouts."""
        record = self.agents.get(agent_id)
        if record is None or (link is not None and record.link is not link) or not record.connected:
            return
        log.info("Agent {id} disconnected", id=agent_id)
        record.connected = False
        record.active = False
        self.allocator.deactivateAgent(agent_id)
        self._rescind_agent_offers(agent_id)
        for task in record.all_tasks():
            framework = self.frameworks.get(task.framework_id)
            if framework is not None and not framework.info.checkpoint and not task.terminal:
                self._lose_task(record, task, "Agent disconnected", T.REASON_AGENT_DISCONNECTED,
                                agent_removed=False)

    def agentUnreachable(self, agent_id: str) -> defer.Deferred:
        """The agent missed too many pings: once the registry says so, report its tasks."""
        if agent_id not in self.agents:
            return defer.succeed(None)
        self.health.unwatch(agent_id)
        now = self.clock.seconds()
        d = self._persist(MarkUnreachable(agent_id, now))
        d.addCallback(lambda _: self._unreachable(agent_id, now))
        d.addErrback(lambda _: None)  # _persist has reported it (and the master aborts)
        return d

    def _unreachable(self, agent_id: str, now: float) -> None:
        record = self.agents.pop(agent_id, None)
        if record is None:
            return
        log.warn("Agent {id} is unreachable; marking its tasks lost", id=agent_id)
        self.admitted.discard(agent_id)
        self.unreachable[agent_id] = now
        self.metrics["slave_removals"] += 1
        self.metrics["slave_removals/reason_unhealthy"] += 1
        self._forget_agent_offers(agent_id, rescind=True)
        for task in record.all_tasks():
            if not task.terminal:
                self._lose_task(record, task, "Agent was removed", T.REASON_AGENT_REMOVED, agent_removed=True)
            if task.state != T.UNREACHABLE:
                # Unreachable tasks of partition-aware frameworks stay known (for reconciliation,
                # and to resume if the agent comes back), as in Mesos 1.1+.
                self._remove_task(record, task)
        self.allocator.removeAgent(agent_id)
        for framework in self.frameworks.values():
            framework.send(api.failure_event(agent_id=agent_id))
        if record.link is not None and record.connected:
            record.link.removed("Agent was marked unreachable after missing health checks")

    def _reregistration_timed_out(self) -> None:
        """Agents from the registry that did not come back after a failover are unreachable."""
        self._reregistration_timer = None
        now = self.clock.seconds()
        for agent_id in list(self.recovered_agents):
            del self.recovered_agents[agent_id]
            log.warn("Agent {id} did not re-register within --agent_reregister_timeout", id=agent_id)
            self.metrics["recovery_slave_removals"] += 1
            d = self._persist(MarkUnreachable(agent_id, now))
            d.addCallback(lambda _, agent_id=agent_id: self._recovered_agent_lost(agent_id, now))
            d.addErrback(lambda _: None)  # _persist has reported it (and the master aborts)

    def _recovered_agent_lost(self, agent_id: str, now: float) -> None:
        self.admitted.discard(agent_id)
        self.unreachable[agent_id] = now
        for framework in self.frameworks.values():
            framework.send(api.failure_event(agent_id=agent_id))

    def unregisterAgent(self, agent_id: str) -> None:
        """The agent left on purpose: its tasks are gone."""
        record = self.agents.pop(agent_id, None)
        if record is None:
            return
        self.health.unwatch(agent_id)
        self.admitted.discard(agent_id)
        self._persist(RemoveAgent(agent_id)).addErrback(lambda _: None)
        self.metrics["slave_removals/reason_unregistered"] += 1
        self._forget_agent_offers(agent_id, rescind=True)
        for task in record.all_tasks():
            if not task.terminal:
                self._lose_task(record, task, "Agent shut down", T.REASON_AGENT_REMOVED, agent_removed=True)
            self._remove_task(record, task)
        self.allocator.removeAgent(agent_id)
        for framework in self.frameworks.values():
            framework.send(api.failure_event(agent_id=agent_id))

    def _lose_task(self, record: AgentRecord, task: Task, message: str, reason: str, agent_removed: bool) -> None:
        """Report a task lost to its framework (unreliably: it has no UUID) and free it."""
        framework = self.frameworks.get(task.framework_id)
        partition_aware = framework is not None and framework.info.partition_aware
        if partition_aware:
            state = T.UNREACHABLE if agent_removed else T.GONE
        else:
            state = T.LOST
        status = TaskStatus(task.task_id, state, message=message, source=T.SOURCE_MASTER, reason=reason,
                            agent_id=record.id, executor_id=task.executor_id, timestamp=self.clock.seconds())
        was_terminal = task.terminal
        task.record(status)
        task.status_update_state = state
        if not was_terminal:
            self.metrics[f"tasks_{state[5:].lower()}"] += 1
            self.allocator.recoverResources(task.framework_id, record.id, task.resources)
        if framework is not None:
            framework.send(api.update_event(status))
            if state != T.UNREACHABLE:
                framework.tasks.pop(task.task_id, None)
                framework.completed_tasks.append(task)
        if state != T.UNREACHABLE:
            record.remove_task(task.framework_id, task.task_id)

    def _remove_task(self, record: AgentRecord, task: Task) -> None:
        record.remove_task(task.framework_id, task.task_id)
        framework = self.frameworks.get(task.framework_id)
        if framework is not None and framework.tasks.get(task.task_id) is task:
            del framework.tasks[task.task_id]
            framework.completed_tasks.append(task)


def without_uuid(status: TaskStatus, agent_id: str) -> TaskStatus:
    """A status as the master replays it: unreliable (no UUID), as a reconciliation answer."""
    return attrs.evolve(status, uuid=None, agent_id=agent_id, reason=T.REASON_RECONCILIATION)
