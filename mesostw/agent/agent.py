"""The agent's state machine: registration, executors, tasks and their status updates.

Driven by calls from its master link, its executor links and its
containerizer; time comes from an injected clock. The transport adapters
(PB, HTTP, in-process) stay outside.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter, deque
from typing import Any, Iterable

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.agent import paths
from mesostw.agent.checkpoint import Checkpointer, boot_id
from mesostw.agent.containers import Termination
from mesostw.agent.executor_auth import ExecutorSecrets
from mesostw.agent.executor_setup import container_resources, executor_environment
from mesostw.agent.state import (
    COMMAND_EXECUTOR,
    DEFAULT_EXECUTOR,
    MAX_COMPLETED_FRAMEWORKS,
    REGISTERING,
    RUNNING,
    TERMINATED,
    TERMINATING,
    ExecutorState,
    FrameworkState,
)
from mesostw.agent.status_updates import StatusUpdateManager
from mesostw.executor import command, native
from mesostw.interfaces import IContainerizer, IExecutorLink, IMasterLink
from mesostw.model import executor_api as xapi
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, MasterInfo
from mesostw.model.operations import Incompatible, apply_checkpointed
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Task, TaskInfo, TaskStatus, new_uuid
from mesostw.model.units import format_duration
from mesostw.store.memory import MemoryStateStore

log = Logger()

DISCONNECTED = "DISCONNECTED"
REGISTERED = "RUNNING"


class Agent:
    """Everything one agent knows and does, independent of transport."""

    def __init__(self, config: Any, info: AgentInfo, containerizer: IContainerizer, clock: Any,
                 checkpointer: Checkpointer | None = None):
        self.config = config
        self.info = info
        self.containerizer = containerizer
        self.clock = clock
        self.start_time = clock.seconds()
        self.master: IMasterLink | None = None
        self.master_info: MasterInfo | None = None
        self.state = DISCONNECTED
        self.frameworks: dict[str, FrameworkState] = {}
        self.completed_frameworks: deque[FrameworkState] = deque(maxlen=MAX_COMPLETED_FRAMEWORKS)
        self.updates = StatusUpdateManager(clock, self._forward_updates)
        #: container ID -> (state, message, reason) its tasks get when the agent ended it for a reason
        self._terminations: dict[str, tuple[str, str, str]] = {}
        self.metrics: Counter[str] = Counter()
        self.registered: defer.Deferred[str] = defer.Deferred()  # fires once, on the first registration
        self.last_heard = clock.seconds()
        #: LIBPROCESS_SSL_* for executors, so that they reach this agent over TLS when it speaks it
        self.tls_environment: dict[str, str] = {}
        #: writes what a restart needs (see mesostw.agent.checkpoint); in memory unless given a store
        self.checkpointer = checkpointer if checkpointer is not None else Checkpointer(MemoryStateStore())
        #: executors of an earlier run that have yet to reconnect (see mesostw.agent.recovery)
        self.recovering: set[ExecutorState] = set()
        #: fires once those have reconnected or been given up on: the agent may then (re-)register
        self.recovered: defer.Deferred[None] = defer.Deferred()
        #: issues each executor run its secret (MESOS_EXECUTOR_AUTHENTICATION_TOKEN) and checks it; the
        #: service replaces this one with the key kept in the work_dir, so that secrets survive a restart
        self.executor_secrets = ExecutorSecrets.generate()
        #: dynamic reservations and persistent volumes, as the master last gave them (and the checkpoint
        #: keeps them); ``info.resources`` are the ``--resources``, :attr:`total` both together
        self.checkpointed: Resources = EMPTY
        #: the latest resources given to the checkpoint and not yet on disk (None: none pending)
        self._checkpointing: Resources | None = None
        self._total: Resources | None = None
        self._total_of: Resources | None = None
        #: the persistent volumes under the work_dir (None: volumes are not made, e.g. in tests)
        self.volumes: Any = None

    @property
    def id(self) -> str | None:
        return self.info.id

    @property
    def total(self) -> Resources:
        """Everything this agent has: its ``--resources`` with its checkpointed resources applied."""
        if self._total is None or self._total_of is not self.info.resources:
            self._total = apply_checkpointed(self.info.resources, self.checkpointed)
            self._total_of = self.info.resources
        return self._total

    def checkpointResources(self, resources: Resources) -> None:
        """The master's view of this agent's checkpointed resources (after RESERVE, UNRESERVE, CREATE or
        DESTROY, or when it re-registers): checkpoint them, then make or remove volumes and take them as
        ours. As Mesos: the agent shows and announces them only once they are on disk, so an agent killed
        at any moment recovers what it has shown."""
        if resources == (self._checkpointing if self._checkpointing is not None else self.checkpointed):
            return
        try:
            apply_checkpointed(self.info.resources, resources)
        except Incompatible as exc:
            log.error("Ignoring the checkpointed resources the master sent: {e}", e=exc)
            return
        log.info("Checkpointing resources {r}", r=resources)
        self._checkpointing = resources
        self.checkpointer.resources(resources)
        self.checkpointer.durable(self._resourcesCheckpointed, resources)

    def _resourcesCheckpointed(self, resources: Resources) -> None:
        if self._checkpointing is resources:
            self._checkpointing = None
        old, self.checkpointed, self._total = self.checkpointed, resources, None
        if self.volumes is not None:
            in_use = set()
            for executor in self.executors():
                if executor.state != TERMINATED:
                    in_use |= self.volumes.used_by(container_resources(executor))
            self.volumes.sync(old, resources, in_use)

    @property
    def endpoint(self) -> str:
        return f"{self.config.advertise_ip or self.config.ip}:{self.info.port}"

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.endpoint}"

    def recover(self, checkpoint: Any, alive: set[str], mode: str = "reconnect") -> None:
        """Take back what an earlier run checkpointed (see :mod:`mesostw.agent.recovery`); ``alive`` are
        the containers still running. :attr:`recovered` fires once the agent may register."""
        from mesostw.agent.recovery import recover

        recover(self, checkpoint, alive, mode)

    # -- the master ------------------------------------------------------------------

    def masterConnected(self, link: IMasterLink) -> defer.Deferred:
        """A connection to the leading master is up: (re-)register over it."""
        self.master = link
        # The master learns our checkpointed resources from the total we announce.
        announced = attrs.evolve(self.info, resources=self.total)
        if self.info.id is None:
            d = link.register(announced)
            d.addCallback(self._registered, link)
        else:
            d = link.reregister(announced, self._all_tasks(), self._executor_infos(), self._framework_infos())
            d.addCallback(lambda master_info: self._reregistered(master_info, link))
        return d

    def _registered(self, result: tuple[str, MasterInfo], link: IMasterLink) -> None:
        agent_id, master_info = result
        self.info = attrs.evolve(self.info, id=agent_id)
        self.checkpointer.agent(self.info, boot_id())
        log.info("Registered with master {m} as agent {id}", m=master_info.pid, id=agent_id)
        self._now_registered(master_info, link)
        self.metrics["registrations"] += 1

    def _reregistered(self, master_info: MasterInfo, link: IMasterLink) -> None:
        log.info("Re-registered with master {m} as agent {id}", m=master_info.pid, id=self.info.id)
        self._now_registered(master_info, link)
        self.metrics["reregistrations"] += 1

    def _now_registered(self, master_info: MasterInfo, link: IMasterLink) -> None:
        if self.master is not link:
            return
        self.master_info = master_info
        self.state = REGISTERED
        self.last_heard = self.clock.seconds()
        self.updates.resume()
        if not self.registered.called:
            assert self.info.id is not None  # registration gave it one
            self.registered.callback(self.info.id)

    def masterDisconnected(self, link: IMasterLink | None = None) -> None:
        if link is not None and self.master is not link:
            return
        if self.state != DISCONNECTED:
            log.info("Lost the master; holding status updates until it is back")
        self.master = None
        self.state = DISCONNECTED
        self.updates.pause()

    def removedByMaster(self, reason: str) -> None:
        """The master gave up on this agent; drop the connection so that it re-registers."""
        log.warn("The master removed this agent: {reason}", reason=reason)
        link = self.master
        self.masterDisconnected()
        if link is not None:
            link.disconnect()

    def ping(self) -> str:
        self.metrics["pings"] += 1
        self.last_heard = self.clock.seconds()
        return "pong"

    def master_silent(self) -> bool:
        """Whether the master has not pinged for as long as it would take it to give up on us
        (Mesos's agents then look for the master again)."""
        if self.state != REGISTERED:
            return False
        limit = self.config.agent_ping_timeout * self.config.max_agent_ping_timeouts
        return self.clock.seconds() - self.last_heard > limit

    def _forward_updates(self, batch: list[tuple[str, TaskStatus]]) -> None:
        # As Mesos: an update goes out only once it is checkpointed.
        self.checkpointer.durable(self._send_updates, batch)

    def _send_updates(self, batch: list[tuple[str, TaskStatus]]) -> None:
        if self.master is not None and self.state == REGISTERED:
            self.master.statusUpdates(batch)

    # -- launching -------------------------------------------------------------------

    def runTasks(self, framework_info: FrameworkInfo, tasks: Iterable[TaskInfo],
                 group_executor: ExecutorInfo | None = None) -> None:
        """Start tasks of a framework, starting their executors where needed; with ``group_executor`` the
        tasks are one task group, which that executor gets whole (one LAUNCH_GROUP)."""
        framework_id = framework_info.id
        assert framework_id is not None
        framework = self.frameworks.get(framework_id)
        if framework is None:
            framework = self.frameworks[framework_id] = FrameworkState(framework_info)
            if framework_info.checkpoint:
                self.checkpointer.framework(framework_info)
        else:
            if framework_info.checkpoint and framework_info != framework.info:
                self.checkpointer.framework(framework_info)
            framework.info = framework_info
        if group_executor is not None:
            self._run_group(framework, list(tasks), group_executor)
            return
        for task in tasks:
            self.metrics["tasks_staging"] += 1
            executor_info = task.executor or self._command_executor(framework_id, task)
            executor = framework.executors.get(executor_info.executor_id)
            if framework.terminating or (executor is not None and executor.state in (TERMINATING, TERMINATED)):
                self._agent_update(framework_id, task.task_id, T.LOST, "Executor or framework is terminating",
                                   T.REASON_EXECUTOR_TERMINATED, executor_info.executor_id)
                continue
            if executor is None:
                # The task waits in the new executor's queue (or fails with it if it cannot start).
                self._launch_executor(framework, executor_info, [task])
                continue
            framework.task_executors[task.task_id] = executor
            if framework.info.checkpoint:
                self.checkpointer.task(framework_id, executor.id, task)
            if executor.state == RUNNING and executor.link is not None:
                self._send_launch(executor, task)
            else:
                executor.queued[task.task_id] = task

    def _run_group(self, framework: FrameworkState, tasks: list[TaskInfo], info: ExecutorInfo) -> None:
        """A task group for one executor: started together, delivered together (LAUNCH_GROUP)."""
        self.metrics["tasks_staging"] += len(tasks)
        executor = framework.executors.get(info.executor_id)
        if framework.terminating or (executor is not None and executor.state in (TERMINATING, TERMINATED)):
            for task in tasks:
                self._agent_update(framework.id, task.task_id, T.LOST, "Executor or framework is terminating",
                                   T.REASON_EXECUTOR_TERMINATED, info.executor_id)
            return
        if executor is None:
            self._launch_executor(framework, info, tasks, group=True)
            return
        for task in tasks:
            framework.task_executors[task.task_id] = executor
            if framework.info.checkpoint:
                self.checkpointer.task(framework.id, executor.id, task)
        if executor.state == RUNNING and executor.link is not None:
            self._send_launch_group(executor, tasks)
        else:
            for task in tasks:
                executor.queued[task.task_id] = task
            executor.queued_groups.append(tuple(task.task_id for task in tasks))

    def _command_executor(self, framework_id: str, task: TaskInfo) -> ExecutorInfo:
        command = task.command or CommandInfo("")
        shown = command.value or ""
        shown = f"sh -c '{shown}'" if len(shown) <= 15 else f"sh -c '{shown[:12]}...'"
        return ExecutorInfo(
            executor_id=task.task_id,
            framework_id=framework_id,
            command=CommandInfo(COMMAND_EXECUTOR, shell=True, environment=dict(command.environment),
                                user=command.user, uris=command.uris),
            name=f"Command Executor (Task: {task.task_id}) (Command: {shown})",
            source=task.task_id,
            type="DEFAULT",
        )

    def _launch_executor(self, framework: FrameworkState, info: ExecutorInfo, tasks: list[TaskInfo],
                         group: bool = False) -> ExecutorState:
        container_id = str(uuid.uuid4())
        assert self.info.id is not None
        directory = paths.sandbox_dir(self.config.work_dir, self.info.id, framework.id, info.executor_id,
                                      container_id)
        user: str | None = (info.command.user if info.command and info.command.user else None) or framework.info.user
        if not self.config.switch_user:
            user = None  # everything runs as the agent's own user
        executor = ExecutorState(info=info, framework_id=framework.id, container_id=container_id,
                                 directory=directory, user=user)
        framework.executors[info.executor_id] = executor
        for task in tasks:
            executor.queued[task.task_id] = task
            framework.task_executors[task.task_id] = executor
        if group:
            executor.queued_groups.append(tuple(task.task_id for task in tasks))
        if framework.info.checkpoint:
            self.checkpointer.executor(framework.id, info, container_id, directory, user)
            for task in tasks:
                self.checkpointer.task(framework.id, info.executor_id, task)
        self.metrics["executors_registering"] += 1
        environment = self.executor_environment(framework, executor)
        # Queue the task and arm the timer first: a launch may fail synchronously, and the failure
        # must then report the task and cancel the timer.
        executor.registration_timer = self.clock.callLater(
            self.config.executor_registration_timeout, self._registration_timed_out, framework.id, executor)
        launched = info
        if executor.is_default_executor:
            # The framework names no program for Mesos's default executor: the agent has its own.
            launched = attrs.evolve(info, command=CommandInfo(DEFAULT_EXECUTOR, shell=True, user=user))
        # The command executor of a task with a health check needs the health checks' modules, which
        # the launcher's child imports before it switches to the task's user.
        health = executor.is_command_executor and any("health_check" in task.extra for task in tasks)
        extra: dict[str, Any] = {"preload": ("health",)} if health else {}
        if executor.is_command_executor and not health and self.native_command_executor(environment):
            extra["native"] = True
        if executor.is_command_executor:
            self.metrics["command_executors_native" if extra.get("native") else "command_executors_python"] += 1
        d = defer.maybeDeferred(self.containerizer.launch, container_id, launched, framework.info, directory,
                                environment, user, container_resources(executor), **extra)
        d.addCallbacks(self._executor_started, self._executor_launch_failed,
                       callbackArgs=(executor,), errbackArgs=(framework, executor))
        return executor

    def native_command_executor(self, environment: dict[str, str]) -> bool:
        """Whether a plain command task (no health check) runs the native command executor: when the
        agent allows it (``--native_command_executor``), the program is built, the executor does not
        speak TLS and reaches the agent at an IP address (the native one has neither TLS nor a resolver)."""
        if not getattr(self.config, "native_command_executor", True) or not native.available():
            return False
        host = environment.get("MESOS_AGENT_ENDPOINT", "").rpartition(":")[0]
        return command.literal_family(host) is not None and not command.tls_wanted(environment)

    def executor_environment(self, framework: FrameworkState, executor: ExecutorState) -> dict[str, str]:
        """The environment Mesos gives an executor (on top of the agent's own)."""
        return executor_environment(self, framework, executor)

    def _executor_started(self, pid: int | None, executor: ExecutorState) -> None:
        executor.pid = pid
        record = self.containerizer.record(executor.container_id)
        if record is not None:
            self.checkpointer.container(record)
        d = defer.maybeDeferred(self.containerizer.wait, executor.container_id)
        d.addBoth(self._executor_exited, executor)

    def _executor_launch_failed(self, failure: Any, framework: FrameworkState, executor: ExecutorState) -> None:
        log.failure("Could not launch executor {id}", failure, id=executor.id)
        executor.cancel_timers()
        message = f"Failed to launch executor: {failure.getErrorMessage()}"
        self._executor_gone(executor, T.FAILED, message, T.REASON_CONTAINER_LAUNCH_FAILED, None)

    def _registration_timed_out(self, framework_id: str, executor: ExecutorState) -> None:
        executor.registration_timer = None
        if executor.state == REGISTERING:
            log.warn("Executor {id} did not subscribe in time; destroying it", id=executor.id)
            executor.state = TERMINATING
            executor.killed_by_agent = True
            # As Mesos: its tasks fail with REASON_EXECUTOR_REGISTRATION_TIMEOUT, not TASK_KILLED.
            self._terminations[executor.container_id] = (
                T.FAILED, "Executor did not register within "
                f"{format_duration(self.config.executor_registration_timeout)}",
                T.REASON_EXECUTOR_REGISTRATION_TIMEOUT)
            self.containerizer.destroy(executor.container_id)

    def _send_launch(self, executor: ExecutorState, task: TaskInfo, queued: bool = False) -> None:
        """Hand a task to its subscribed executor; a task that did not wait in its queue grows the container."""
        record = Task(info=task, framework_id=executor.framework_id, executor_id=executor.id,
                      user=executor.user)
        executor.launched[task.task_id] = record
        if not queued:
            self.containerizer.update(executor.container_id, container_resources(executor))
        # As Mesos: the executor gets a task only once the task is checkpointed.
        self.checkpointer.durable(self._deliver, executor, xapi.launch_event(task))

    def _send_launch_group(self, executor: ExecutorState, tasks: list[TaskInfo], queued: bool = False) -> None:
        """Hand a task group to its subscribed executor, whole."""
        for task in tasks:
            executor.launched[task.task_id] = Task(info=task, framework_id=executor.framework_id,
                                                   executor_id=executor.id, user=executor.user)
        if not queued:
            self.containerizer.update(executor.container_id, container_resources(executor))
        self.checkpointer.durable(self._deliver, executor, xapi.launch_group_event(tasks))

    @staticmethod
    def _deliver(executor: ExecutorState, event: dict[str, Any]) -> None:
        if executor.link is not None:
            executor.link.send(event)

    # -- executors --------------------------------------------------------------------

    def executorSubscribe(self, link: IExecutorLink, framework_id: str, executor_id: str,
                          call: xapi.Subscribe) -> bool:
        """An executor connected; hand it its queued tasks. False if it is not known here."""
        framework = self.frameworks.get(framework_id)
        executor = framework.executors.get(executor_id) if framework else None
        if framework is None or executor is None or executor.state == TERMINATED:
            link.send(xapi.error_event(f"Executor {executor_id} of framework {framework_id} is not known here"))
            link.close()
            return False
        if executor.link is not None and executor.link is not link:
            executor.link.close()
        executor.link = link
        link.send(xapi.subscribed_event(executor.info, framework.info, self.info, executor.container_id))
        if executor.state == TERMINATING:
            link.send(xapi.SHUTDOWN_EVENT)
            return True
        if executor.registration_timer is not None and executor.registration_timer.active():
            executor.registration_timer.cancel()
        executor.registration_timer = None
        if executor.state == REGISTERING:
            self.metrics["executors_registering"] -= 1
            self.metrics["executors_running"] += 1
        executor.state = RUNNING
        self._recovered_executor(executor)
        for status in call.unacknowledged_updates:
            self.executorUpdate(framework_id, executor_id, status)
        known = {task.task_id for task in call.unacknowledged_tasks}
        # Checkpointed before a restart, perhaps never sent: its executor does not know them (the default
        # executor gets them as one group).
        undelivered = [launched.info for task_id in sorted(executor.undelivered - known)
                       if (launched := executor.launched.get(task_id)) is not None and not launched.statuses]
        if undelivered and executor.is_default_executor:
            self.checkpointer.durable(self._deliver, executor, xapi.launch_group_event(undelivered))
        else:
            for info in undelivered:
                self.checkpointer.durable(self._deliver, executor, xapi.launch_event(info))
        executor.undelivered.clear()
        groups, executor.queued_groups = executor.queued_groups, []
        for ids in groups:
            members = [executor.queued.pop(task_id) for task_id in ids if task_id in executor.queued]
            if members:
                self._send_launch_group(executor, members, queued=True)
        for queued in list(executor.queued.values()):
            del executor.queued[queued.task_id]
            self._send_launch(executor, queued, queued=True)
        return True

    def _recovered_executor(self, executor: ExecutorState) -> None:
        """An executor of an earlier run is back (or gone for good): once none is awaited, the agent
        may register with the master with what it runs."""
        if executor in self.recovering:
            self.recovering.discard(executor)
            if not self.recovering and not self.recovered.called:
                self.recovered.callback(None)

    def executorDisconnected(self, framework_id: str, executor_id: str, link: IExecutorLink) -> None:
        framework = self.frameworks.get(framework_id)
        executor = framework.executors.get(executor_id) if framework else None
        if executor is not None and executor.link is link:
            executor.link = None

    def executorUpdate(self, framework_id: str, executor_id: str, status: TaskStatus) -> bool:
        """A status update from an executor; False if it names nothing known."""
        framework = self.frameworks.get(framework_id)
        executor = framework.executors.get(executor_id) if framework else None
        task = executor.find(status.task_id) if executor else None
        if executor is None or task is None or status.uuid is None:
            self.metrics["invalid_status_updates"] += 1
            return False
        if framework is not None and framework.terminating:
            # As Mesos: nobody will acknowledge these any more (the streams were cleaned up), so
            # keeping them would retry forever and keep the executor from being retired.
            self.metrics["invalid_status_updates"] += 1
            return False
        status = attrs.evolve(status, agent_id=self.info.id, executor_id=executor_id,
                              source=status.source or T.SOURCE_EXECUTOR,
                              timestamp=self.clock.seconds() if status.timestamp is None else status.timestamp)
        if status.state == T.FAILED and not task.terminal:
            status = self._limited(executor, status)
        self._record(executor, task, status)
        assert status.uuid is not None  # updates without one were refused above
        # Acknowledged once checkpointed: until then the executor keeps it, to send again.
        self.checkpointer.durable(self._deliver, executor, xapi.acknowledged_event(status.task_id, status.uuid))
        self.metrics["valid_status_updates"] += 1
        return True

    def _limited(self, executor: ExecutorState, status: TaskStatus) -> TaskStatus:
        """A task that failed because its container broke a limit (killed by the OOM killer) fails for
        that reason, and the container goes (as Mesos destroys a container on a limitation)."""
        limitation = self.containerizer.limitation(executor.container_id)
        if limitation is None:
            return status
        self.containerizer.destroy(executor.container_id)
        return attrs.evolve(status, reason=limitation.reason, message=limitation.message)

    def executorMessage(self, framework_id: str, executor_id: str, data: bytes) -> None:
        if self.master is not None and self.state == REGISTERED:
            self.metrics["valid_framework_messages"] += 1
            self.master.executorMessage(framework_id, executor_id, data)
        else:
            self.metrics["invalid_framework_messages"] += 1

    def _record(self, executor: ExecutorState, task: Task, status: TaskStatus) -> None:
        framework = self.frameworks.get(executor.framework_id)
        if framework is None or framework.terminating:
            # Nobody is left to acknowledge it: settle the task here instead of queueing an update.
            self._settle_without_framework(framework, executor, task, status)
            return
        if not self.updates.update(executor.framework_id, status):
            return
        if framework.info.checkpoint:
            self.checkpointer.update(framework.id, executor.id, status)
        was_terminal = task.terminal
        if not was_terminal or status.terminal:
            task.record(status)
        if status.terminal and not was_terminal:
            self.metrics[f"tasks_{status.state[5:].lower()}"] += 1
            executor.launched.pop(task.task_id, None)
            executor.terminated[task.task_id] = task
            if executor.state != TERMINATED and not executor.is_command_executor:
                self.containerizer.update(executor.container_id, container_resources(executor))
        elif status.state == T.RUNNING:
            self.metrics["tasks_running"] += 1
        head = self.updates.pending(executor.framework_id, task.task_id)
        if head:
            task.status_update_state = head[0].state
            task.status_update_uuid = head[0].uuid

    def _settle_without_framework(self, framework: FrameworkState | None, executor: ExecutorState, task: Task,
                                  status: TaskStatus) -> None:
        if task.terminal and not status.terminal:
            return
        task.record(status)
        if status.terminal:
            executor.launched.pop(task.task_id, None)
            executor.terminated.pop(task.task_id, None)
            executor.completed.append(task)
            if framework is not None:
                framework.task_executors.pop(task.task_id, None)
            self._maybe_retire(framework, executor)

    def _agent_update(self, framework_id: str, task_id: str, state: str, message: str, reason: str,
                      executor_id: str | None = None) -> None:
        """An update the agent itself generates for a task no executor can report on."""
        status = TaskStatus(task_id, state, message=message, source=T.SOURCE_AGENT, reason=reason,
                            agent_id=self.info.id, executor_id=executor_id, timestamp=self.clock.seconds(),
                            uuid=new_uuid())
        self.metrics[f"tasks_{state[5:].lower()}"] += 1
        if self.updates.update(framework_id, status) and executor_id is not None:
            framework = self.frameworks.get(framework_id)
            if framework is not None and framework.info.checkpoint:
                self.checkpointer.update(framework_id, executor_id, status)

    # -- acknowledgements -------------------------------------------------------------

    def acknowledge(self, acknowledgements: Iterable[tuple[str, str, bytes]]) -> None:
        """Scheduler acknowledgements relayed by the master."""
        for framework_id, task_id, uuid_bytes in acknowledgements:
            acked = self.updates.acknowledge(framework_id, task_id, uuid_bytes)
            if acked is None:
                continue
            framework = self.frameworks.get(framework_id)
            executor = framework.executor_of(task_id) if framework else None
            task = executor.find(task_id) if executor else None
            if framework is None or executor is None or task is None:
                continue
            pending = self.updates.pending(framework_id, task_id)
            task.status_update_state = pending[0].state if pending else acked.state
            task.status_update_uuid = pending[0].uuid if pending else acked.uuid
            if framework.info.checkpoint:
                if acked.terminal and not pending:
                    self.checkpointer.forget_task(framework_id, executor.id, task_id)
                else:
                    self.checkpointer.acknowledged(framework_id, executor.id, task_id, len(pending))
            if acked.terminal and not pending:
                executor.terminated.pop(task_id, None)
                executor.completed.append(task)
                framework.task_executors.pop(task_id, None)
                self._maybe_retire(framework, executor)

    # -- killing and shutting down ---------------------------------------------------

    def killTask(self, framework_id: str, task_id: str, grace_period: float | None = None) -> None:
        framework = self.frameworks.get(framework_id)
        executor = framework.executor_of(task_id) if framework else None
        if framework is None or executor is None:
            self._agent_update(framework_id, task_id, T.LOST, "Cannot find the task to kill on this agent",
                               T.REASON_TASK_UNKNOWN)
            return
        if task_id in executor.queued:
            # A queued task of a task group takes its whole group with it, as in Mesos.
            group = next((ids for ids in executor.queued_groups if task_id in ids), (task_id,))
            if len(group) > 1:
                executor.queued_groups.remove(group)
            for member in group:
                if executor.queued.pop(member, None) is not None:
                    framework.task_executors.pop(member, None)
                    self._agent_update(framework_id, member, T.KILLED, "Killed before it was launched",
                                       T.REASON_TASK_KILLED_DURING_LAUNCH, executor.id)
            if executor.idle() and executor.state == REGISTERING:
                self._shutdown_executor(executor)
            return
        task = executor.find(task_id)
        if task is None or task.terminal:
            return
        if executor.link is not None and executor.state == RUNNING:
            executor.link.send(xapi.kill_event(task_id, grace_period if grace_period is not None
                                               else task.info.kill_grace_period))
        else:
            self._shutdown_executor(executor)

    def shutdownExecutor(self, framework_id: str, executor_id: str) -> None:
        framework = self.frameworks.get(framework_id)
        executor = framework.executors.get(executor_id) if framework else None
        if executor is not None:
            self._shutdown_executor(executor)

    def shutdownFramework(self, framework_id: str) -> None:
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return
        log.info("Shutting down framework {id}", id=framework_id)
        framework.terminating = True
        for executor in list(framework.executors.values()):
            self._shutdown_executor(executor)
        self.updates.cleanup(framework_id)
        self._maybe_retire_framework(framework)

    def _shutdown_executor(self, executor: ExecutorState) -> None:
        if executor.state in (TERMINATING, TERMINATED):
            return
        executor.state = TERMINATING
        executor.killed_by_agent = True
        if executor.link is not None:
            executor.link.send(xapi.SHUTDOWN_EVENT)
            executor.shutdown_timer = self.clock.callLater(
                self.config.executor_shutdown_grace_period, self._destroy, executor)
        else:
            self._destroy(executor)

    def _destroy(self, executor: ExecutorState) -> None:
        executor.shutdown_timer = None
        if executor.state != TERMINATED:
            self.containerizer.destroy(executor.container_id)

    def _executor_exited(self, result: Any, executor: ExecutorState) -> None:
        """The container ended (a :class:`Termination`; fakes may give a bare wait status)."""
        if isinstance(result, Termination):
            status, limitation = result.status, result.limitation
        else:
            status, limitation = (result if isinstance(result, int) else None), None
        if limitation is not None and executor.container_id not in self._terminations:
            self._terminations[executor.container_id] = (T.FAILED, limitation.message, limitation.reason)
        self._executor_gone(executor, T.FAILED, _exit_message(status), T.REASON_EXECUTOR_TERMINATED, status)

    def _executor_gone(self, executor: ExecutorState, state: str, message: str, reason: str,
                       status: int | None) -> None:
        """The executor's process ended: settle its unfinished tasks and tell the master."""
        if executor.state == TERMINATED:
            return
        if executor.state == REGISTERING:
            self.metrics["executors_registering"] -= 1
        elif executor.state in (RUNNING, TERMINATING):
            self.metrics["executors_running"] -= 1
        executor.cancel_timers()
        executor.state = TERMINATED
        executor.exit_status = status
        self.metrics["executors_terminated"] += 1
        self.checkpointer.forget_container(executor.container_id)
        self._recovered_executor(executor)
        if executor.link is not None:
            executor.link.close()
            executor.link = None
        framework_id = executor.framework_id
        framework = self.frameworks.get(framework_id)
        termination = self._terminations.pop(executor.container_id, None)
        if termination is not None:
            state, message, reason = termination
        elif executor.killed_by_agent:
            state, message, reason = T.KILLED, "Executor was shut down", T.REASON_EXECUTOR_TERMINATED
        executor.queued_groups.clear()
        for task_id in list(executor.queued):
            del executor.queued[task_id]
            if framework is not None:
                framework.task_executors.pop(task_id, None)
            self._agent_update(framework_id, task_id, state, message, reason, executor.id)
        for task in list(executor.launched.values()):
            status_update = TaskStatus(task.task_id, state, message=message, source=T.SOURCE_AGENT,
                                       reason=reason, agent_id=self.info.id, executor_id=executor.id,
                                       timestamp=self.clock.seconds(), uuid=new_uuid())
            if framework is not None and not framework.terminating:
                self._record(executor, task, status_update)
            else:
                executor.launched.pop(task.task_id, None)
                task.record(status_update)
                executor.completed.append(task)
                if framework is not None:
                    framework.task_executors.pop(task.task_id, None)
        # As Mesos: command executors are the agent's own business; the master never knew them.
        if (framework is not None and self.master is not None and self.state == REGISTERED
                and not executor.is_command_executor):
            self.master.exitedExecutor(framework_id, executor.id, status)
        if framework is not None:
            self._maybe_retire(framework, executor)

    def _maybe_retire(self, framework: FrameworkState | None, executor: ExecutorState) -> None:
        if framework is None or executor.state != TERMINATED or not executor.idle():
            return
        if framework.executors.get(executor.id) is executor:
            del framework.executors[executor.id]
            framework.completed_executors.append(executor)
            if framework.info.checkpoint:
                self.checkpointer.forget_executor(framework.id, executor.id)
        self._maybe_retire_framework(framework)

    def _maybe_retire_framework(self, framework: FrameworkState) -> None:
        if framework.executors:
            return
        if self.frameworks.get(framework.id) is framework:
            del self.frameworks[framework.id]
            self.completed_frameworks.append(framework)
            if framework.info.checkpoint:
                self.checkpointer.forget_framework(framework.id)

    def frameworkMessage(self, framework_id: str, executor_id: str, data: bytes) -> None:
        framework = self.frameworks.get(framework_id)
        executor = framework.executors.get(executor_id) if framework else None
        if executor is None or executor.link is None:
            self.metrics["invalid_framework_messages"] += 1
            return
        self.metrics["valid_framework_messages"] += 1
        executor.link.send(xapi.message_event(data))

    # -- reporting ------------------------------------------------------------------

    def _all_tasks(self) -> list[Task]:
        tasks: list[Task] = []
        for framework in self.frameworks.values():
            for executor in framework.executors.values():
                tasks.extend(executor.launched.values())
                tasks.extend(executor.terminated.values())
                for queued in executor.queued.values():
                    tasks.append(Task(info=queued, framework_id=framework.id, executor_id=executor.id,
                                      user=executor.user))
        return tasks

    def _executor_infos(self) -> list[ExecutorInfo]:
        return [executor.info for framework in self.frameworks.values()
                for executor in framework.executors.values() if not executor.is_command_executor]

    def _framework_infos(self) -> list[FrameworkInfo]:
        return [framework.info for framework in self.frameworks.values()]

    def executors(self) -> Iterable[ExecutorState]:
        for framework in self.frameworks.values():
            yield from framework.executors.values()

    def stop(self) -> None:
        self.updates.stop()
        for executor in self.executors():
            executor.cancel_timers()


def _exit_message(status: int | None) -> str:
    if status is None:
        return "Executor terminated"
    if os.WIFEXITED(status):
        return f"Executor exited with status {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        return f"Executor terminated by signal {os.WTERMSIG(status)}"
    return f"Executor terminated with wait status {status}"
