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


def create_sandbox(directory: str) -> str:
    """Make a run's sandbox and point its executor's ``runs/latest`` link at it."""
    runs = os.path.dirname(directory)
    try:
        os.mkdir(directory)  # the usual case: the executor's runs/ exists from an earlier run or task
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
    except FileExistsError:
        pass
    relink(os.path.join(runs, "latest"), os.path.basename(directory))
    return directory


def relink(link: str, target: str) -> None:
    """Atomically (re)point a symlink."""
    temporary = f"{link}.{os.getpid()}.tmp"
    try:
        os.symlink(target, temporary)
        os.replace(temporary, link)
    except OSError:
        if os.path.lexists(temporary):
            os.unlink(temporary)
