"""Agent recovery (Mesos's ``Slave::recover``): an agent restarted on its ``--work_dir`` takes back
what its checkpoint (:mod:`mesostw.agent.checkpoint`) says it ran.

It keeps its agent ID, and rebuilds the frameworks that checkpoint, their executors, their tasks
and their unacknowledged status updates (sent again once it is registered). Then, per executor:

* its container still runs and ``--recover=reconnect``: the executor has
  ``--executor_reregistration_timeout`` to subscribe again; one that does not is destroyed and its
  tasks become TASK_LOST (TASK_GONE for partition-aware frameworks);
* ``--recover=cleanup``: destroyed at once, its tasks reported the same way;
* its container is gone (killed, or the host rebooted): its unfinished tasks fail.

Containers no checkpointed executor owns (non-checkpointing frameworks' executors) are destroyed.
The agent registers with the master only once every executor it waits for is back or given up,
so that the master hears of exactly what runs.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger

from mesostw.agent.checkpoint import Checkpoint
from mesostw.agent.state import REGISTERING, TERMINATING, ExecutorState, FrameworkState
from mesostw.model import task as T
from mesostw.model.task import Task
from mesostw.model.units import format_duration

log = Logger()

RECONNECT = "reconnect"
CLEANUP = "cleanup"


def recover(agent: Any, checkpoint: Checkpoint, alive: set[str], mode: str = RECONNECT) -> None:
    """Rebuild ``agent`` (an :class:`mesostw.agent.agent.Agent`, before it registers) from ``checkpoint``;
    ``alive`` are the IDs of the containers the containerizer found still running."""
    if checkpoint.agent is not None and checkpoint.agent.id:
        agent.info = attrs.evolve(agent.info, id=checkpoint.agent.id)
    if checkpoint.resources is not None:
        # Dynamic reservations and volumes (the service checked that --resources still hold them).
        agent.checkpointed = checkpoint.resources
    owned: set[str] = set()
    for recovered in checkpoint.frameworks.values():
        framework = agent.frameworks[recovered.info.id] = FrameworkState(recovered.info)
        for record in recovered.executors.values():
            executor = ExecutorState(info=record.info, framework_id=framework.id, container_id=record.container_id,
                                     directory=record.directory, user=record.user, state=REGISTERING)
            framework.executors[executor.id] = executor
            owned.add(executor.container_id)
            _recover_tasks(agent, framework, executor, record.tasks)
            agent.metrics["executors_registering"] += 1
            if executor.container_id in alive and mode == RECONNECT:
                agent.recovering.add(executor)
                executor.registration_timer = agent.clock.callLater(
                    agent.config.executor_reregistration_timeout, _reregistration_timed_out, agent, executor)
            elif executor.container_id in alive:
                _give_up(agent, framework, executor, "The agent restarted with --recover=cleanup",
                         T.REASON_AGENT_RESTARTED)
            # Whatever happened to it, its container's end is reported as any executor's.
            agent.containerizer.wait(executor.container_id).addBoth(agent._executor_exited, executor)
    for container_id in sorted(set(checkpoint.containers) - owned):
        if container_id in alive:
            log.info("Destroying container {id}: its framework does not checkpoint", id=container_id)
            agent.containerizer.destroy(container_id)
        agent.checkpointer.forget_container(container_id)
    if checkpoint.frameworks:
        log.info("Recovered {f} framework(s), {e} executor(s); waiting for {w} to reconnect",
                 f=len(checkpoint.frameworks), e=len(owned), w=len(agent.recovering))
    if not agent.recovering and not agent.recovered.called:
        agent.recovered.callback(None)


def _recover_tasks(agent: Any, framework: FrameworkState, executor: ExecutorState, tasks: dict[str, Any]) -> None:
    for task_id, recovered in tasks.items():
        task = Task(info=recovered.info, framework_id=framework.id, executor_id=executor.id, user=executor.user)
        for status in recovered.updates:
            if not task.terminal or status.terminal:
                task.record(status)
        pending = recovered.updates[recovered.acked:]
        agent.updates.recover(framework.id, task_id, pending, [u.uuid for u in recovered.updates if u.uuid])
        if pending:
            task.status_update_state, task.status_update_uuid = pending[0].state, pending[0].uuid
        if not task.terminal:
            executor.launched[task_id] = task
            if not recovered.updates:
                executor.undelivered.add(task_id)
        elif pending:
            executor.terminated[task_id] = task
        else:
            executor.completed.append(task)
            continue
        framework.task_executors[task_id] = executor


def _lost_state(framework: FrameworkState) -> str:
    return T.GONE if framework.info.partition_aware else T.LOST


def _give_up(agent: Any, framework: FrameworkState, executor: ExecutorState, message: str, reason: str) -> None:
    """Destroy a recovered executor's container; its unfinished tasks are lost (gone, if partition-aware)."""
    executor.state = TERMINATING
    executor.killed_by_agent = True
    agent._terminations[executor.container_id] = (_lost_state(framework), message, reason)
    agent.containerizer.destroy(executor.container_id)


def _reregistration_timed_out(agent: Any, executor: ExecutorState) -> None:
    executor.registration_timer = None
    framework = agent.frameworks.get(executor.framework_id)
    if executor.state != REGISTERING or framework is None:
        return
    timeout = format_duration(agent.config.executor_reregistration_timeout)
    log.warn("Executor {id} did not reconnect within {t}; destroying it", id=executor.id, t=timeout)
    _give_up(agent, framework, executor, f"Executor did not reconnect within {timeout} of the agent's restart",
             T.REASON_EXECUTOR_REREGISTRATION_TIMEOUT)
    agent._recovered_executor(executor)
