"""``mesostw ps`` (a table of the cluster's tasks) and ``mesostw kill`` (kill one task)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from mesostw.cli import http
from mesostw.cli.errors import CLIError
from mesostw.cli.output import format_table
from mesostw.cli.state import TaskEntry, agent_hostnames, find_task, iter_tasks, master_state

COLUMNS = ("FRAMEWORK", "TASK", "AGENT", "STATE", "CPUS", "MEM")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    ps = subparsers.add_parser("ps", parents=[common], help="list the cluster's tasks",
                               description="List the tasks the master knows, one per line.")
    ps.add_argument("-a", "--all", action="store_true",
                    help="also list completed tasks and the tasks of completed frameworks")
    ps.set_defaults(func=run_ps)

    kill = subparsers.add_parser("kill", parents=[common], help="kill a task",
                                 description="Ask the master to kill one task (POST /master/kill).")
    kill.add_argument("task_id", metavar="TASK_ID", help="the ID of the task to kill")
    kill.add_argument("--framework", metavar="FRAMEWORK_ID",
                      help="the task's framework (looked up in /master/state when omitted)")
    kill.set_defaults(func=run_kill)


def run_ps(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    state = master_state(args.master_url)
    hostnames = agent_hostnames(state)
    rows = [_row(entry, hostnames) for entry in iter_tasks(state, completed=args.all)]
    out.write(format_table(COLUMNS, rows))
    return 0


def run_kill(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    framework_id = args.framework
    if not framework_id:
        state = master_state(args.master_url)
        try:
            framework_id = find_task(state, args.task_id, active_only=True).framework_id
        except CLIError:
            _explain_inactive(state, args.task_id)
            raise
    http.post_form(f"{args.master_url}/master/kill", {"frameworkId": framework_id, "taskId": args.task_id})
    out.write(f"Killing task {args.task_id}\n")
    return 0


def _explain_inactive(state: dict[str, Any], task_id: str) -> None:
    """A clearer error for a task that exists but has already finished."""
    for entry in iter_tasks(state):
        if entry.id == task_id and not entry.active:
            raise CLIError(f"task '{task_id}' has already terminated ({entry.task.get('state', 'unknown state')})")


def _row(entry: TaskEntry, hostnames: dict[str, str]) -> list[str]:
    resources = entry.task.get("resources")
    resources = resources if isinstance(resources, dict) else {}
    return [str(entry.framework.get("name") or entry.framework_id), entry.id,
            hostnames.get(entry.agent_id, entry.agent_id), str(entry.task.get("state", "")),
            _number(resources.get("cpus")), _number(resources.get("mem"))]


def _number(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return "" if value is None else str(value)
