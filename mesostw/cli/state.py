"""Reading the cluster: the master's ``/master/state``, finding tasks, agents and sandboxes in it.

Works on the v0 JSON shapes (``mesos:src/master/http.cpp``, ``src/slave/http.cpp``) so it reads a
Mesos master as well as a mesostw one. Also the ``mesostw state`` command.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any, TextIO

import attrs

from mesostw.cli import http
from mesostw.cli.errors import CLIError
from mesostw.cli.output import write_json


@attrs.frozen
class TaskEntry:
    """One task of ``/master/state`` with the framework that owns it."""

    task: dict[str, Any]
    framework: dict[str, Any]
    active: bool  # in ``tasks`` of a registered framework (not completed, not torn down)

    @property
    def id(self) -> str:
        return str(self.task.get("id", ""))

    @property
    def framework_id(self) -> str:
        return str(self.task.get("framework_id") or self.framework.get("id", ""))

    @property
    def agent_id(self) -> str:
        return str(self.task.get("slave_id") or self.task.get("agent_id") or "")


def master_state(master_url: str) -> dict[str, Any]:
    state = http.get_json(f"{master_url}/master/state")
    if not isinstance(state, dict):
        raise CLIError(f"{master_url}/master/state is not a JSON object")
    return state


def iter_tasks(state: dict[str, Any], completed: bool = True) -> Iterator[TaskEntry]:
    """Active tasks of registered frameworks first; then, if ``completed``, every finished one."""
    frameworks = _list(state, "frameworks")
    for framework in frameworks:
        for task in _list(framework, "tasks"):
            yield TaskEntry(task, framework, True)
    if not completed:
        return
    for framework in frameworks:
        for task in _list(framework, "completed_tasks"):
            yield TaskEntry(task, framework, False)
    for framework in _list(state, "completed_frameworks"):
        for key in ("tasks", "completed_tasks"):
            for task in _list(framework, key):
                yield TaskEntry(task, framework, False)


def find_task(state: dict[str, Any], task_id: str, framework_id: str | None = None,
              active_only: bool = False) -> TaskEntry:
    """The task with this ID; an active one wins over completed ones with the same ID."""
    matches = [entry for entry in iter_tasks(state, completed=not active_only)
               if entry.id == task_id and (framework_id is None or entry.framework_id == framework_id)]
    if not matches:
        where = f" in framework '{framework_id}'" if framework_id else ""
        raise CLIError(f"no task '{task_id}'{where} is known to the master")
    frameworks = sorted({entry.framework_id for entry in matches})
    if len(frameworks) > 1:
        raise CLIError(f"task ID '{task_id}' is ambiguous: it exists in frameworks {', '.join(frameworks)}; "
                       "choose one with --framework")
    active = [entry for entry in matches if entry.active]
    return active[0] if active else matches[-1]


def agent_url(state: dict[str, Any], agent_id: str, scheme: str = "http") -> str:
    """The HTTP address of an agent, from its libprocess pid ``slave(1)@host:port``."""
    for agent in _list(state, "slaves") + _list(state, "recovered_slaves"):
        if agent.get("id") != agent_id:
            continue
        pid = str(agent.get("pid") or "")
        if "@" in pid:
            return f"{scheme}://{pid.split('@', 1)[1]}"
        if agent.get("hostname") and agent.get("port"):
            return f"{scheme}://{agent['hostname']}:{agent['port']}"
        break
    raise CLIError(f"agent '{agent_id}' is not registered with the master")


def agent_hostnames(state: dict[str, Any]) -> dict[str, str]:
    return {str(a.get("id")): str(a.get("hostname") or a.get("id")) for a in _list(state, "slaves")}


def sandbox_directory(agent_state: dict[str, Any], framework_id: str, task_id: str) -> str:
    """The ``directory`` of the executor that runs (or ran) the task, from ``/slave(1)/state``."""
    found: list[tuple[bool, str]] = []
    for framework in _list(agent_state, "frameworks") + _list(agent_state, "completed_frameworks"):
        if framework.get("id") != framework_id:
            continue
        for executor in _list(framework, "executors") + _list(framework, "completed_executors"):
            running = any(t.get("id") == task_id for key in ("tasks", "queued_tasks") for t in _list(executor, key))
            done = any(t.get("id") == task_id for t in _list(executor, "completed_tasks"))
            if (running or done) and executor.get("directory"):
                found.append((running, str(executor["directory"])))
    if not found:
        raise CLIError(f"the agent has no sandbox for task '{task_id}' (it may have been garbage-collected)")
    active = [directory for is_running, directory in found if is_running]
    return active[0] if active else found[-1][1]


def _list(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = obj.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# -- the command ------------------------------------------------------------------

def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("state", parents=[common], help="print the master's /master/state",
                                   description="Print the master's state (GET /master/state) as indented JSON.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    write_json(out, master_state(args.master_url))
    return 0
