"""What an executor is started with: the resources its container is isolated for and its environment."""

from __future__ import annotations

import os
from typing import Any

from mesostw.agent.executor_auth import ENVIRONMENT_VARIABLE as SECRET_VARIABLE
from mesostw.agent.state import COMMAND_EXECUTOR_RESOURCES, ExecutorState, FrameworkState
from mesostw.model.resources import Resources
from mesostw.model.units import format_duration


def container_resources(executor: ExecutorState) -> Resources:
    """What an executor's container is isolated for: the executor's resources (Mesos's overhead for
    the command executor) and its tasks', queued or running."""
    total = COMMAND_EXECUTOR_RESOURCES if executor.is_command_executor else executor.info.resources
    for queued in executor.queued.values():
        total = total + queued.resources
    for task in executor.launched.values():
        total = total + task.resources
    return total


def executor_environment(agent: Any, framework: FrameworkState, executor: ExecutorState) -> dict[str, str]:
    """The environment Mesos gives an executor of ``agent`` (on top of the agent's own)."""
    config = agent.config
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESOS_", "LIBPROCESS_"))}
    env.update({
        "MESOS_FRAMEWORK_ID": framework.id,
        "MESOS_EXECUTOR_ID": executor.id,
        "MESOS_DIRECTORY": executor.directory,
        "MESOS_SANDBOX": executor.directory,
        "MESOS_SLAVE_ID": agent.info.id or "",
        "MESOS_AGENT_ID": agent.info.id or "",
        "MESOS_SLAVE_PID": agent.pid,
        "MESOS_AGENT_ENDPOINT": agent.endpoint,
        "MESOS_CHECKPOINT": "1" if framework.info.checkpoint else "0",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": format_duration(config.executor_shutdown_grace_period),
        "MESOS_HTTP_COMMAND_EXECUTOR": "1",
        "MESOS_ALLOCATION_ROLE": framework.info.allocation_role,
    })
    env.update(agent.tls_environment)
    if framework.info.checkpoint:
        env["MESOS_RECOVERY_TIMEOUT"] = format_duration(config.recovery_timeout)
        env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = "2secs"
    if executor.info.command is not None:
        env.update(executor.info.command.environment)
    # Last: a framework's environment cannot replace it. Derived from the container ID, so an
    # executor recovered after an agent restart presents the same secret (see executor_auth).
    env[SECRET_VARIABLE] = agent.executor_secrets.secret(framework.id, executor.id, executor.container_id)
    return env
