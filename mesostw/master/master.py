"""The master's state machine: agents, frameworks, tasks and status updates.

Plain Python driven by method calls from the transport adapters (PB, HTTP,
in-process links) and by an injected clock; its effects are calls on links
and on the allocator. Scheduler calls are handled by
:class:`mesostw.master.calls.SchedulerCalls`, agent health by
:class:`mesostw.master.health.AgentHealth`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any, Iterable

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.interfaces import IAgentLink, IAllocator, IFrameworkLink
from mesostw.master.health import AgentHealth
from mesostw.master.offers import OfferManager
from mesostw.master.records import AgentRecord, CompletedFrameworks, FrameworkRecord
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo, MasterInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Offer, Task, TaskStatus

log = Logger()


class RegistrationRefused(Exception):
    """An agent or framework may not (re-)register; the message says why."""


class Master:
    """Everything the leading master knows and decides."""

    def __init__(self, config: Any, allocator: IAllocator, clock: Any, master_id: str | None = None):
        self.config = config
        self.clock = clock
        self.allocator = allocator
        self.id = master_id or str(uuid.uuid4())
        self.info = MasterInfo(
            id=self.id,
            ip=config.advertise_ip or config.ip,
            port=config.advertise_port or config.port,
            hostname=config.hostname or config.ip,
        )
        self.start_time = clock.seconds()
        self.elected_time: float | None = self.start_time
        self.agents: dict[str, AgentRecord] = {}
        self.unreachable: dict[str, float] = {}
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.completed = CompletedFrameworks(config.max_completed_frameworks)
        self.offers = OfferManager(clock, self.id, config.offer_timeout, self._offer_timed_out)
        self.health = AgentHealth(clock, config.agent_ping_timeout, config.max_agent_ping_timeouts,
                                  self.agentUnreachable)
        self.metrics: Counter[str] = Counter()
        self._next_framework = 0
        self._next_agent = 0
        self._allocation_pending: Any = None
        self._allocation_candidates: set[str] | None = set()

    # -- identity -------------------------------------------------------------

    def _new_framework_id(self) -> str:
        framework_id = f"{self.id}-{self._next_framework:04d}"
        self._next_framework += 1
        return framework_id

    def _new_agent_id(self) -> str:
        agent_id = f"{self.id}-S{self._next_agent}"
        self._next_agent += 1
        return agent_id

    # -- agents ---------------------------------------------------------------

    def registerAgent(self, link: IAgentLink, info: AgentInfo, version: str = "") -> defer.Deferred:
        """Admit a new agent; fires with (agent_id, MasterInfo)."""
        self.metrics["messages_register_slave"] += 1
        problem = self._check_agent(info)
        if problem:
            return defer.fail(RegistrationRefused(problem))
        agent_id = self._new_agent_id()
        info = _with_id(info, agent_id)
        record = AgentRecord(info=info, link=link, registered_time=self.clock.seconds(), version=version)
        self.agents[agent_id] = record
        self.allocator.addAgent(agent_id, info.resources)
        self.health.watch(agent_id, link)
        self.metrics["slave_registrations"] += 1
        log.info("Registered agent {id} at {host}:{port} with {res}", id=agent_id, host=info.hostname,
                 port=info.port, res=str(info.resources))
        self.requestAllocation([agent_id])
        return defer.succeed((agent_id, self.info))

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
        now = self.clock.seconds()
        for framework_info in frameworks:
            self._recover_framework(framework_info)
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
                framework.send(api.update_event(_without_uuid(latest, agent_id)))
        for framework_id in doomed:
            if framework_id in self.completed:
                link.shutdownFramework(framework_id)
        used = {fid: record.used_by(fid) for fid in record.tasks.keys() | {f for f, _ in record.executors}}
        self.allocator.addAgent(agent_id, info.resources, {f: r for f, r in used.items() if r})
        self.health.watch(agent_id, link)
        self.metrics["slave_reregistrations"] += 1
        log.info("Re-registered agent {id} with {n} tasks", id=agent_id, n=len(tasks))
        self.requestAllocation([agent_id])
        return defer.succeed(self.info)

    def _check_agent(self, info: AgentInfo) -> str | None:
        if not info.hostname:
            return "agent_info.hostname must not be empty"
        scalars = info.resources.scalars()
        if "cpus" not in scalars or "mem" not in scalars:
            return "an agent must offer cpus and mem"
        return None

    def _recover_framework(self, info: FrameworkInfo) -> None:
        """Learn of a framework from a re-registering agent (e.g. after master failover)."""
        if info.id is None or info.id in self.frameworks or info.id in self.completed:
            return
        record = FrameworkRecord(info=info, link=None, registered_time=self.clock.seconds(), active=False,
                                 recovered=True)
        self.frameworks[info.id] = record
        self.allocator.addFramework(info.id, info.allocation_role, active=False)

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

    def agentUnreachable(self, agent_id: str) -> None:
        """The agent missed too many pings: report its tasks and forget it until it returns."""
        record = self.agents.pop(agent_id, None)
        if record is None:
            return
        log.warn("Agent {id} is unreachable; marking its tasks lost", id=agent_id)
        self.health.unwatch(agent_id)
        self.unreachable[agent_id] = self.clock.seconds()
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

    def unregisterAgent(self, agent_id: str) -> None:
        """The agent left on purpose: its tasks are gone."""
        record = self.agents.pop(agent_id, None)
        if record is None:
            return
        self.health.unwatch(agent_id)
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

    # -- status updates --------------------------------------------------------

    def statusUpdates(self, agent_id: str, updates: Iterable[tuple[str, TaskStatus]]) -> None:
        """Status updates forwarded by an agent; each is passed on to its framework."""
        record = self.agents.get(agent_id)
        if record is None:
            self.metrics["invalid_status_updates"] += 1
            return
        for framework_id, status in updates:
            self.metrics["messages_status_update"] += 1
            framework = self.frameworks.get(framework_id)
            if framework is None or status.uuid is None:
                self.metrics["invalid_status_updates"] += 1
                continue
            task = framework.tasks.get(status.task_id)
            if task is not None and task.agent_id == agent_id:
                if task.status_update_uuid != status.uuid:
                    self._apply_update(record, framework, task, status)
            self.metrics["valid_status_updates"] += 1
            framework.send(api.update_event(status))

    def _apply_update(self, record: AgentRecord, framework: FrameworkRecord, task: Task, status: TaskStatus) -> None:
        was_terminal = task.terminal
        task.record(status)
        task.status_update_state = status.state
        task.status_update_uuid = status.uuid
        if status.terminal and not was_terminal:
            self.metrics[f"tasks_{status.state[5:].lower()}"] += 1
            self.allocator.recoverResources(framework.id, record.id, task.resources)
            self.requestAllocation([record.id])
        elif status.state == T.RUNNING:
            self.metrics["tasks_started"] += 1

    def acknowledge(self, framework: FrameworkRecord, agent_id: str, task_id: str, uuid_bytes: bytes) -> None:
        """A scheduler acknowledged an update: pass it to the agent, retire acknowledged terminal tasks."""
        self.metrics["messages_status_update_acknowledgement"] += 1
        record = self.agents.get(agent_id)
        if record is None or not record.connected or record.link is None:
            self.metrics["dropped_messages"] += 1
            return
        record.link.acknowledge([(framework.id, task_id, uuid_bytes)])
        task = framework.tasks.get(task_id)
        if task is not None and task.terminal and task.status_update_uuid == uuid_bytes:
            self._remove_task(record, task)

    def exitedExecutor(self, agent_id: str, framework_id: str, executor_id: str, status: int | None) -> None:
        record = self.agents.get(agent_id)
        if record is None:
            return
        executor = record.executors.pop((framework_id, executor_id), None)
        if executor is not None and executor.resources:
            self.allocator.recoverResources(framework_id, agent_id, executor.resources)
            self.requestAllocation([agent_id])
        framework = self.frameworks.get(framework_id)
        if framework is not None:
            framework.send(api.failure_event(agent_id, executor_id, status))

    def executorMessage(self, agent_id: str, framework_id: str, executor_id: str, data: bytes) -> None:
        framework = self.frameworks.get(framework_id)
        self.metrics["messages_executor_to_framework"] += 1
        if framework is None or not framework.send(api.message_event(agent_id, executor_id, data)):
            self.metrics["dropped_messages"] += 1

    # -- frameworks ------------------------------------------------------------

    def subscribe(self, link: IFrameworkLink, info: FrameworkInfo, force: bool = False) -> str:
        """Register a framework or take one back; sends SUBSCRIBED and returns its ID."""
        self.metrics["messages_register_framework"] += 1
        problem = self._check_framework(info)
        if problem:
            raise RegistrationRefused(problem)
        now = self.clock.seconds()
        framework = self.frameworks.get(info.id) if info.id else None
        if framework is None:
            framework_id = info.id or self._new_framework_id()
            info = _with_id(info, framework_id)
            framework = FrameworkRecord(info=info, link=link, registered_time=now)
            self.frameworks[framework_id] = framework
            self.allocator.addFramework(framework_id, info.allocation_role)
            if info.id and info.id != framework_id:
                framework.reregistered_time = now
            log.info("Registered framework {id} ({name}) as {user}", id=framework_id, name=info.name,
                     user=info.user)
        else:
            if framework.link is not None and framework.link is not link:
                framework.link.send(api.error_event("Framework failed over"))
                framework.link.close()
            if info.allocation_role != framework.info.allocation_role:
                raise RegistrationRefused("a framework may not change its role when it re-registers")
            framework.info = _with_id(info, framework.id)
            framework.link = link
            framework.reregistered_time = now
            framework.recovered = False
            if framework.failover_timer is not None and framework.failover_timer.active():
                framework.failover_timer.cancel()
            framework.failover_timer = None
            self._rescind_framework_offers(framework)
            log.info("Framework {id} re-registered", id=framework.id)
        framework.active = True
        framework.suppressed = False
        self.allocator.activateFramework(framework.id)
        self.allocator.reviveOffers(framework.id)
        link.send(api.subscribed_event(framework.id, self.info))
        self.requestAllocation()
        return framework.id

    def _check_framework(self, info: FrameworkInfo) -> str | None:
        if not info.user:
            return "framework_info.user must not be empty"
        if not info.name:
            return "framework_info.name must not be empty"
        if info.id and info.id in self.completed:
            return f"Framework {info.id} has been removed"
        roles = self.config.roles
        if roles and info.allocation_role != "*" and info.allocation_role not in roles:
            return f"Role {info.allocation_role!r} is not present in the master's --roles"
        return None

    def frameworkDisconnected(self, framework_id: str, link: IFrameworkLink) -> None:
        """The scheduler's connection went away: keep its tasks for its failover timeout."""
        framework = self.frameworks.get(framework_id)
        if framework is None or framework.link is not link:
            return
        log.info("Framework {id} disconnected; failover timeout {t}s", id=framework_id,
                 t=framework.info.failover_timeout)
        framework.link = None
        framework.active = False
        framework.unregistered_time = self.clock.seconds()
        self.allocator.deactivateFramework(framework_id)
        self._rescind_framework_offers(framework)
        framework.failover_timer = self.clock.callLater(
            framework.info.failover_timeout, self._failover_expired, framework_id)

    def _failover_expired(self, framework_id: str) -> None:
        framework = self.frameworks.get(framework_id)
        if framework is not None and framework.link is None:
            log.info("Framework {id} did not fail over in time; removing it", id=framework_id)
            self.removeFramework(framework_id)

    def removeFramework(self, framework_id: str) -> None:
        """Tear a framework down: kill its tasks everywhere and forget it."""
        framework = self.frameworks.pop(framework_id, None)
        if framework is None:
            return
        if framework.failover_timer is not None and framework.failover_timer.active():
            framework.failover_timer.cancel()
        self._rescind_framework_offers(framework, notify=False)
        for record in self.agents.values():
            if framework_id in record.tasks or any(f == framework_id for f, _ in record.executors):
                if record.link is not None and record.connected:
                    record.link.shutdownFramework(framework_id)
                for task in list(record.tasks.get(framework_id, {}).values()):
                    if not task.terminal:
                        task.record(TaskStatus(task.task_id, T.KILLED, message="Framework removed",
                                               source=T.SOURCE_MASTER, reason=T.REASON_FRAMEWORK_REMOVED,
                                               agent_id=record.id, timestamp=self.clock.seconds()))
                        self.metrics["tasks_killed"] += 1
                    framework.completed_tasks.append(task)
                record.tasks.pop(framework_id, None)
                for key in [k for k in record.executors if k[0] == framework_id]:
                    del record.executors[key]
        framework.tasks.clear()
        self.allocator.removeFramework(framework_id)
        if framework.link is not None:
            framework.link.close()
            framework.link = None
        framework.active = False
        framework.unregistered_time = self.clock.seconds()
        self.completed.add(framework)
        self.requestAllocation()

    def operatorKill(self, framework_id: str, task_id: str) -> str | None:
        """An operator asks to kill a task (a mesostw extension); returns why not, or None."""
        framework = self.frameworks.get(framework_id)
        task = framework.tasks.get(task_id) if framework is not None else None
        if task is None:
            return f"Task {task_id} of framework {framework_id} is not known"
        agent = self.agents.get(task.agent_id)
        if agent is None or not agent.connected or agent.link is None:
            return f"Agent {task.agent_id} of task {task_id} is not connected"
        agent.link.killTask(framework_id, task_id)
        return None

    # -- offers -----------------------------------------------------------------

    def requestAllocation(self, agent_ids: Iterable[str] | None = None) -> None:
        """Allocate soon (in the same reactor turn's aftermath), for these agents or for all."""
        if agent_ids is None:
            self._allocation_candidates = None
        elif self._allocation_candidates is not None:
            self._allocation_candidates.update(agent_ids)
        if self._allocation_pending is None:
            self._allocation_pending = self.clock.callLater(0, self._allocate_pending)

    def _allocate_pending(self) -> None:
        self._allocation_pending = None
        candidates, self._allocation_candidates = self._allocation_candidates, set()
        if candidates is None or candidates:
            self.allocate(candidates)

    def allocate(self, agent_ids: Iterable[str] | None = None) -> int:
        """Run the allocator and send the offers it makes; returns how many were made."""
        result = self.allocator.allocate(agent_ids)
        by_framework: dict[str, list[Offer]] = {}
        for framework_id, agent_id, resources in result:
            framework = self.frameworks.get(framework_id)
            record = self.agents.get(agent_id)
            if framework is None or framework.link is None or record is None:
                self.allocator.recoverResources(framework_id, agent_id, resources)
                continue
            executor_ids = tuple(e for f, e in record.executors if f == framework_id)
            offer = Offer(self.offers.new_id(), framework_id, agent_id, record.info.hostname, resources,
                          framework.info.allocation_role, record.info.attributes, executor_ids,
                          record.info.port)
            self.offers.add(offer)
            framework.offers.add(offer.id)
            record.offered = record.offered + resources
            by_framework.setdefault(framework_id, []).append(offer)
        for framework_id, offers in by_framework.items():
            self.frameworks[framework_id].send(api.offers_event(offers))
        return len(result)

    def take_offer(self, offer_id: str) -> Offer | None:
        """Remove an offer because it is being answered; the caller owns its resources now."""
        offer = self.offers.remove(offer_id)
        if offer is None:
            return None
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.discard(offer_id)
        record = self.agents.get(offer.agent_id)
        if record is not None:
            record.offered = record.offered - offer.resources
        return offer

    def rescind(self, offer_id: str, notify: bool = True) -> None:
        offer = self.take_offer(offer_id)
        if offer is None:
            return
        self.allocator.recoverResources(offer.framework_id, offer.agent_id, offer.resources)
        framework = self.frameworks.get(offer.framework_id)
        if notify and framework is not None:
            framework.send(api.rescind_event(offer_id))

    def _offer_timed_out(self, offer: Offer) -> None:
        log.info("Offer {id} timed out; rescinding", id=offer.id)
        self.rescind(offer.id)
        self.requestAllocation([offer.agent_id])

    def _rescind_agent_offers(self, agent_id: str) -> None:
        for offer in self.offers.on_agent(agent_id):
            self.rescind(offer.id)

    def _forget_agent_offers(self, agent_id: str, rescind: bool = False) -> None:
        for offer in self.offers.on_agent(agent_id):
            self.take_offer(offer.id)
            framework = self.frameworks.get(offer.framework_id)
            if rescind and framework is not None:
                framework.send(api.rescind_event(offer.id))

    def _rescind_framework_offers(self, framework: FrameworkRecord, notify: bool = True) -> None:
        for offer_id in list(framework.offers):
            self.rescind(offer_id, notify=notify and framework.link is not None)

    # -- queries -----------------------------------------------------------------

    def framework_used(self, framework_id: str) -> Resources:
        used = EMPTY
        for record in self.agents.values():
            used = used + record.used_by(framework_id)
        return used

    def framework_offered(self, framework: FrameworkRecord) -> Resources:
        offered = EMPTY
        for offer in self.offers.of(framework.offers):
            offered = offered + offer.resources
        return offered

    def stop(self) -> None:
        """Cancel every timer the master holds (for clean shutdown and tests)."""
        self.offers.stop()
        self.health.stop()
        if self._allocation_pending is not None and self._allocation_pending.active():
            self._allocation_pending.cancel()
        self._allocation_pending = None
        for framework in self.frameworks.values():
            if framework.failover_timer is not None and framework.failover_timer.active():
                framework.failover_timer.cancel()


def _with_id(info: Any, new_id: str) -> Any:
    return attrs.evolve(info, id=new_id)


def _without_uuid(status: TaskStatus, agent_id: str) -> TaskStatus:
    return attrs.evolve(status, uuid=None, agent_id=agent_id, reason=T.REASON_RECONCILIATION)
