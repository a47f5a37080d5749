"""The master's answers to v1 scheduler Calls, whatever transport brought them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.master.records import AgentRecord, FrameworkRecord
from mesostw.master.tasks import KillOutcome
from mesostw.master.validation import check_group, check_offers, check_task
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Task, TaskInfo, TaskStatus
from mesostw.scheduler.session import CallRefused

if TYPE_CHECKING:
    from mesostw.master.master import Master

log = Logger()


class UnknownFramework(CallRefused):
    """A call named a framework the master does not know."""


class SchedulerCalls:
    """Dispatches validated Calls from a subscribed framework to the master's components."""

    def __init__(self, master: Master):
        self.master = master
        self._handlers: dict[type, Callable[[FrameworkRecord, Any], None]] = {
            api.Teardown: self.teardown,
            api.Accept: self.accept,
            api.Decline: self.decline,
            api.Revive: self.revive,
            api.Suppress: self.suppress,
            api.Kill: self.kill,
            api.Shutdown: self.shutdown,
            api.Acknowledge: self.acknowledge,
            api.Reconcile: self.reconcile,
            api.Message: self.message,
            api.Request: lambda framework, call: None,
            api.AcceptInverseOffers: self.accept_inverse_offers,
            api.DeclineInverseOffers: self.decline_inverse_offers,
        }

    def handle(self, framework_id: str, call: api.Call) -> None:
        framework = self.master.framework_manager.get(framework_id)
        if framework is None:
            raise UnknownFramework(f"Framework {framework_id} is not subscribed")
        self._handlers[type(call)](framework, call)

    # -- offers ------------------------------------------------------------------

    def decline(self, framework: FrameworkRecord, call: api.Decline) -> None:
        master = self.master
        master.metrics["messages_decline_offers"] += 1
        for offer_id in call.offer_ids:
            offer = master.offers.get(offer_id)
            if offer is None or offer.framework_id != framework.id:
                continue
            master.offers.take(offer_id)
            master.allocator.recoverResources(framework.id, offer.agent_id, offer.resources, call.filters)

    def accept(self, framework: FrameworkRecord, call: api.Accept) -> None:
        master = self.master
        master.metrics["messages_accept"] += 1
        tasks = [task for op in call.operations if op.type in (T.LAUNCH, T.LAUNCH_GROUP) for task in op.tasks]
        for op in call.operations:
            for task_id, reason in op.invalid:
                master.metrics["invalid_tasks"] += 1
                self._refuse_id(framework, task_id, T.ERROR, T.REASON_TASK_INVALID, reason)
        offers_by_id = {i: o for i in call.offer_ids if (o := master.offers.get(i)) is not None}
        problem = check_offers(framework, call.offer_ids, offers_by_id)
        own = dict.fromkeys(i for i, o in offers_by_id.items() if o.framework_id == framework.id)
        taken = [o for i in own if (o := master.offers.take(i)) is not None]
        if problem is not None:
            for offer in taken:
                master.allocator.recoverResources(framework.id, offer.agent_id, offer.resources)
            state = T.DROPPED if framework.info.partition_aware else T.LOST
            for task in tasks:
                self._refuse(framework, task, state, T.REASON_INVALID_OFFERS, problem)
            master.requestAllocation({o.agent_id for o in taken})
            return
        agent_id = taken[0].agent_id
        agent = master.agent_manager.get(agent_id)
        available = EMPTY
        for offer in taken:
            available = available + offer.resources
        link = agent.reachable_link() if agent is not None else None
        if agent is None or link is None:
            for task in tasks:
                self._refuse(framework, task, T.LOST if not framework.info.partition_aware else T.DROPPED,
                             T.REASON_AGENT_UNKNOWN if agent is None else T.REASON_AGENT_DISCONNECTED,
                             "Agent is no longer registered")
            if agent is not None:
                master.allocator.recoverResources(framework.id, agent_id, available)
            return
        launching: set[str] = set()
        # Operations apply in order, each on what the ones before it left (a RESERVE then a LAUNCH on it).
        durable: defer.Deferred | None = None
        for operation in call.operations:
            if operation.type == T.LAUNCH:
                for task in operation.tasks:
                    available = self._launch(framework, agent, task, available, launching)
            elif operation.type == T.LAUNCH_GROUP:
                available = self._launch_group(framework, agent, operation, available, launching)
            elif operation.type in T.RESOURCE_FIELDS:
                available, applied = master.operations.accept(framework, agent, operation, available)
                durable = applied or durable
            else:
                master.metrics["invalid_operations"] += 1
                framework.send(api.error_event(f"Offer operation {operation.type} is not supported"))
        if available:
            if durable is None:
                self._recover(framework.id, agent_id, available, call.filters)
            else:
                # What the operations changed is offered again only once the registry holds it.
                durable.addBoth(lambda _: self._recover(framework.id, agent_id, available, call.filters))

    def _recover(self, framework_id: str, agent_id: str, resources: Resources, filters: Any) -> None:
        self.master.allocator.recoverResources(framework_id, agent_id, resources, filters)
        self.master.requestAllocation([agent_id])

    def _launch(self, framework: FrameworkRecord, agent: AgentRecord, task: TaskInfo, available: Resources,
                launching: set[str]) -> Resources:
        master = self.master
        problem = check_task(task, framework, agent, available, launching)
        if problem is not None:
            master.metrics["invalid_tasks"] += 1
            self._refuse(framework, task, T.ERROR, T.REASON_TASK_INVALID, problem)
            return available
        user = _task_user(task, framework)
        # The principal the framework proved, never one it merely claims in its FrameworkInfo.
        if not master.security.authorize("run_tasks", framework.principal, user):
            master.metrics["tasks_denied"] += 1
            self._refuse(framework, task, T.ERROR, T.REASON_TASK_UNAUTHORIZED,
                         f"Not authorized to run tasks as user '{user}' "
                         f"(principal {framework.principal or '(none)'})")
            return available
        launching.add(task.task_id)
        needed = task.resources
        executor = task.executor
        if executor is not None:
            executor = attrs.evolve(executor, framework_id=framework.id)
            if master.tasks.add_executor(agent.id, executor):
                needed = needed + executor.resources
            task = attrs.evolve(task, executor=executor)
        master.tasks.launch(framework.id, task, user)
        assert agent.link is not None
        agent.link.runTasks(framework.info, [task])
        return available - needed

    def _launch_group(self, framework: FrameworkRecord, agent: AgentRecord, operation: Any, available: Resources,
                      launching: set[str]) -> Resources:
        """A task group: all of its tasks start together in one executor, or none does (each then gets
        TASK_ERROR with the reason, as Mesos)."""
        master = self.master
        group: list[TaskInfo] = list(operation.tasks)
        problem = check_group(group, operation.executor, framework, agent, available, launching)
        if problem is None:
            users = {_task_user(task, framework) for task in group}
            denied = sorted(u for u in users if not master.security.authorize("run_tasks", framework.principal, u))
            if denied:
                master.metrics["tasks_denied"] += len(group)
                for task in group:
                    self._refuse(framework, task, T.ERROR, T.REASON_TASK_UNAUTHORIZED,
                                 f"Not authorized to run tasks as user '{denied[0]}' "
                                 f"(principal {framework.principal or '(none)'})")
                return available
        if problem is not None:
            master.metrics["invalid_tasks"] += len(group)
            for task in group:
                self._refuse(framework, task, T.ERROR, T.REASON_TASK_GROUP_INVALID, problem)
            return available
        executor = attrs.evolve(operation.executor, framework_id=framework.id)
        needed = EMPTY
        if master.tasks.add_executor(agent.id, executor):
            needed = executor.resources
        group = [attrs.evolve(task, executor=executor) for task in group]
        for task in group:
            launching.add(task.task_id)
            master.tasks.launch(framework.id, task, _task_user(task, framework))
            needed = needed + task.resources
        assert agent.link is not None
        agent.link.runTasks(framework.info, group, executor)
        return available - needed

    def _refuse(self, framework: FrameworkRecord, task: TaskInfo, state: str, reason: str, message: str) -> None:
        self._refuse_id(framework, task.task_id, state, reason, message, task.agent_id or None)

    def _refuse_id(self, framework: FrameworkRecord, task_id: str, state: str, reason: str, message: str,
                   agent_id: str | None = None) -> None:
        log.info("Refusing task {task} of {fw}: {why}", task=task_id, fw=framework.id, why=message)
        self.master.metrics[f"tasks_{state[5:].lower()}"] += 1
        framework.send(api.update_event(TaskStatus(
            task_id, state, message=message, source=T.SOURCE_MASTER, reason=reason,
            agent_id=agent_id, timestamp=self.master.clock.seconds())))

    def accept_inverse_offers(self, framework: FrameworkRecord, call: api.AcceptInverseOffers) -> None:
        self.master.metrics["messages_accept_inverse_offers"] += 1
        self.master.maintenance.answer(framework.id, call.inverse_offer_ids, "ACCEPT", call.filters)

    def decline_inverse_offers(self, framework: FrameworkRecord, call: api.DeclineInverseOffers) -> None:
        self.master.metrics["messages_decline_inverse_offers"] += 1
        self.master.maintenance.answer(framework.id, call.inverse_offer_ids, "DECLINE", call.filters)

    def revive(self, framework: FrameworkRecord, call: api.Revive) -> None:
        self.master.metrics["messages_revive_offers"] += 1
        self.master.framework_manager.revive(framework.id)

    def suppress(self, framework: FrameworkRecord, call: api.Suppress) -> None:
        self.master.metrics["messages_suppress_offers"] += 1
        self.master.framework_manager.suppress(framework.id)

    # -- tasks -------------------------------------------------------------------

    def kill(self, framework: FrameworkRecord, call: api.Kill) -> None:
        master = self.master
        master.metrics["messages_kill_task"] += 1
        outcome = master.killTask(framework.id, call.task_id, call.grace_period)
        if outcome is KillOutcome.UNKNOWN_TASK:
            state = T.UNKNOWN if framework.info.partition_aware else T.LOST
            framework.send(api.update_event(TaskStatus(
                call.task_id, state, message="Attempted to kill an unknown task", source=T.SOURCE_MASTER,
                reason=T.REASON_RECONCILIATION, agent_id=call.agent_id, timestamp=master.clock.seconds())))
        elif outcome is KillOutcome.AGENT_NOT_CONNECTED:
            master.metrics["dropped_messages"] += 1

    def shutdown(self, framework: FrameworkRecord, call: api.Shutdown) -> None:
        link = self.master.agent_manager.reachable_link(call.agent_id)
        if link is not None:
            link.shutdownExecutor(framework.id, call.executor_id)

    def acknowledge(self, framework: FrameworkRecord, call: api.Acknowledge) -> None:
        self.master.acknowledge(framework.id, call.agent_id, call.task_id, call.uuid)

    def reconcile(self, framework: FrameworkRecord, call: api.Reconcile) -> None:
        """Answer with the latest known state of each task (of every live task when none is named)."""
        master = self.master
        agents = master.agent_manager
        master.metrics["messages_reconcile_tasks"] += 1
        now = master.clock.seconds()
        if not call.tasks:
            for task in master.tasks.of_framework(framework.id):
                framework.send(api.update_event(self._latest(task, now)))
            return
        for task_id, agent_id in call.tasks:
            known = master.tasks.get(framework.id, task_id)
            if known is not None:
                framework.send(api.update_event(self._latest(known, now)))
                continue
            if agent_id in agents.recovered or (agent_id is None and agents.recovered):
                # As Mesos: silent until the agent that may hold it re-registers or is declared lost.
                continue
            if agent_id is not None and agent_id in agents.unreachable and framework.info.partition_aware:
                state = T.UNREACHABLE
            elif agent_id is not None and agent_id in agents.gone and framework.info.partition_aware:
                state = T.GONE_BY_OPERATOR
            elif framework.info.partition_aware:
                state = T.UNKNOWN
            else:
                state = T.LOST
            framework.send(api.update_event(TaskStatus(
                task_id, state, message="Reconciliation: task is unknown", source=T.SOURCE_MASTER,
                reason=T.REASON_RECONCILIATION, agent_id=agent_id, timestamp=now)))

    def _latest(self, task: Task, now: float) -> TaskStatus:
        return TaskStatus(task.task_id, task.state, message="Reconciliation: latest task status",
                          source=T.SOURCE_MASTER, reason=T.REASON_RECONCILIATION, agent_id=task.agent_id,
                          executor_id=task.executor_id, timestamp=now,
                          healthy=task.statuses[-1].healthy if task.statuses else None)

    def message(self, framework: FrameworkRecord, call: api.Message) -> None:
        master = self.master
        master.metrics["messages_framework_to_executor"] += 1
        link = master.agent_manager.reachable_link(call.agent_id)
        if link is None:
            master.metrics["dropped_messages"] += 1
            return
        link.frameworkMessage(framework.id, call.executor_id, call.data)

    def teardown(self, framework: FrameworkRecord, call: api.Teardown) -> None:
        self.master.metrics["messages_unregister_framework"] += 1
        self.master.removeFramework(framework.id)


def _task_user(task: TaskInfo, framework: FrameworkRecord) -> str:
    """The user a task runs as: its command's, else its executor's command's, else the framework's."""
    for command in (task.command, task.executor.command if task.executor else None):
        if command is not None and command.user:
            return command.user
    return framework.info.user
