"""Where an agent keeps sandboxes, following Mesos's layout under ``--work_dir``."""

from __future__ import annotations

import os


def agent_dir(work_dir: str, agent_id: str) -> str:
    return os.path.join(work_dir, "slaves", agent_id)


def executor_dir(work_dir: str, agent_id: str, framework_id: str, executor_id: str) -> str:
    return os.path.join(agent_dir(work_dir, agent_id), "frameworks", framework_id, "executors", executor_id)


def sandbox_dir(work_dir: str, agent_id: str, framework_id: str, executor_id: str, container_id: str) -> str:
    """``<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>``"""
    return os.path.join(executor_dir(work_dir, agent_id, framework_id, executor_id), "runs", container_id)


def create_sandbox(work_dir: str, agent_id: str, framework_id: str, executor_id: str, container_id: str) -> str:
    """Make a run's sandbox and point the ``runs/latest`` and ``slaves/latest`` links at it."""
    path = sandbox_dir(work_dir, agent_id, framework_id, executor_id, container_id)
    os.makedirs(path, exist_ok=True)
    _relink(os.path.join(os.path.dirname(path), "latest"), container_id)
    _relink(os.path.join(work_dir, "slaves", "latest"), agent_id)
    return path


def _relink(link: str, target: str) -> None:
    temporary = f"{link}.{os.getpid()}.tmp"
    try:
        os.symlink(target, temporary)
        os.replace(temporary, link)
    except OSError:
        if os.path.lexists(temporary):
            os.unlink(temporary)
