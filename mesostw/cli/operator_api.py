"""Commands over the master's v1 operator API (``POST /api/v1``): ``agents``, ``events`` and ``mark-gone``.

``mesostw agents`` lists the agents (GET_AGENTS) with their resources, what is allocated of them,
their attributes and their state; ``mesostw events`` follows the event stream (SUBSCRIBE) and prints
one line per event; ``mesostw mark-gone`` marks an agent gone for good (MARK_AGENT_GONE). Each has
``--json`` for scripts: the v1 JSON (one event per line for ``events``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any, TextIO

from mesostw.cli import http
from mesostw.cli.errors import CLIError
from mesostw.cli.output import format_table, write_json

API = "/api/v1"
#: A stream that shows nothing (not even a heartbeat) for this many heartbeat intervals is lost.
MISSED_HEARTBEATS = 5
#: The heartbeat interval until SUBSCRIBED says otherwise (Mesos's).
DEFAULT_HEARTBEAT = 15.0
SCALARS = ("cpus", "mem", "disk", "gpus")


def call(master_url: str, body: dict[str, Any]) -> Any:
    """One operator API call; a master without the API is reported as such."""
    try:
        return http.post_json(f"{master_url}{API}", body)
    except http.HTTPStatusError as exc:
        # A 404 of the API itself names what is missing (an agent, a file); one of the server is the path.
        if exc.status == 404 and exc.message.startswith(("No such endpoint", "HTTP 404")):
            raise CLIError(f"{master_url} does not serve the v1 operator API ({API})") from None
        raise


# -- agents -------------------------------------------------------------------------------

def scalars(resources: Any) -> dict[str, float]:
    """Name -> total of the scalar v1 Resources in a list (every role and reservation together)."""
    totals: dict[str, float] = {}
    for resource in resources if isinstance(resources, list) else []:
        if isinstance(resource, dict) and resource.get("type") == "SCALAR":
            value = (resource.get("scalar") or {}).get("value")
            if isinstance(value, (int, float)):
                totals[resource.get("name", "?")] = totals.get(resource.get("name", "?"), 0.0) + float(value)
    return totals


def attributes_text(attributes: Any) -> str:
    """v1 Attributes as ``name=value`` pairs."""
    out = []
    for attribute in attributes if isinstance(attributes, list) else []:
        if not isinstance(attribute, dict):
            continue
        kind, name = attribute.get("type"), attribute.get("name", "?")
        if kind == "SCALAR":
            value = f"{(attribute.get('scalar') or {}).get('value', 0):g}"
        elif kind == "RANGES":
            ranges = (attribute.get("ranges") or {}).get("range", [])
            value = ",".join(f"{r.get('begin')}-{r.get('end')}" for r in ranges)
        elif kind == "SET":
            value = ",".join((attribute.get("set") or {}).get("item", []))
        else:
            value = str((attribute.get("text") or {}).get("value", ""))
        out.append(f"{name}={value}")
    return " ".join(out)


def _used_of(used: float, total: float) -> str:
    return f"{used:g}/{total:g}"


def agent_rows(agents: dict[str, Any]) -> list[list[str]]:
    """Table rows of a GET_AGENTS answer: registered agents, then recovered ones (not back yet)."""
    rows = []
    for agent in agents.get("agents", []):
        info = agent.get("agent_info", {})
        total = scalars(agent.get("total_resources", info.get("resources")))
        used = scalars(agent.get("allocated_resources"))
        drain = (agent.get("drain_info") or {}).get("state")
        state = str(drain).lower() if drain else "deactivated" if agent.get("deactivated") else (
            "active" if agent.get("active") else "inactive")
        rows.append([(info.get("id") or {}).get("value", "?"), f"{info.get('hostname', '?')}:{info.get('port', '?')}",
                     state, *(_used_of(used.get(name, 0.0), total.get(name, 0.0)) for name in ("cpus", "mem", "disk")),
                     attributes_text(info.get("attributes"))])
    for info in agents.get("recovered_agents", []):
        total = scalars(info.get("resources"))
        rows.append([(info.get("id") or {}).get("value", "?"), f"{info.get('hostname', '?')}:{info.get('port', '?')}",
                     "recovered", *(_used_of(0.0, total.get(name, 0.0)) for name in ("cpus", "mem", "disk")),
                     attributes_text(info.get("attributes"))])
    return rows


def run_agents(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    answer = call(args.master_url, {"type": "GET_AGENTS"})
    agents = answer.get("get_agents") if isinstance(answer, dict) else None
    if not isinstance(agents, dict):
        raise CLIError(f"{args.master_url}{API} answered GET_AGENTS without get_agents")
    if args.json:
        write_json(out, agents)
        return 0
    rows = agent_rows(agents)
    if not rows:
        out.write("No agents are registered.\n")
        return 0
    out.write(format_table(("ID", "ADDRESS", "STATE", "CPUS", "MEM", "DISK", "ATTRIBUTES"), rows))
    return 0


# -- mark-gone -------------------------------------------------------------------------------

def run_mark_gone(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    call(args.master_url, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": args.agent_id}}})
    out.write(f"Agent {args.agent_id} is gone: its tasks are reported lost to their frameworks and it may never "
              f"register again.\n")
    return 0


# -- events --------------------------------------------------------------------------------

def read_records(stream: Any) -> Iterator[dict[str, Any]]:
    """The RecordIO records of an open response, decoded as JSON, until the stream ends."""
    while True:
        header = stream.readline(32)
        if not header:
            return
        if not header.strip().isdigit():
            raise CLIError(f"the event stream is not RecordIO (read {header[:20]!r})")
        size = int(header)
        record = stream.read(size)
        if len(record) < size:
            return
        try:
            yield json.loads(record)
        except ValueError:
            raise CLIError("the event stream carried a record that is not JSON") from None


def _id(value: Any) -> str:
    return str(value.get("value", "?")) if isinstance(value, dict) else "?"


def describe(event: dict[str, Any]) -> str:
    """One line for an operator event."""
    kind = str(event.get("type", "UNKNOWN"))
    body = event.get(kind.lower()) or {}
    if kind == "SUBSCRIBED":
        state = body.get("get_state") or {}
        agents = len((state.get("get_agents") or {}).get("agents", []))
        frameworks = len((state.get("get_frameworks") or {}).get("frameworks", []))
        tasks = len((state.get("get_tasks") or {}).get("tasks", []))
        return (f"{agents} agent(s), {frameworks} framework(s), {tasks} live task(s); "
                f"heartbeat every {body.get('heartbeat_interval_seconds', DEFAULT_HEARTBEAT):g}s")
    if kind == "TASK_ADDED":
        task = body.get("task") or {}
        return (f"task {_id(task.get('task_id'))} of framework {_id(task.get('framework_id'))} on agent "
                f"{_id(task.get('agent_id'))}: {task.get('state', '?')}")
    if kind == "TASK_UPDATED":
        status = body.get("status") or {}
        line = (f"task {_id(status.get('task_id'))} of framework {_id(body.get('framework_id'))}: "
                f"{body.get('state', '?')}")
        detail = "; ".join(str(status[k]) for k in ("reason", "message") if status.get(k))
        return f"{line} ({detail})" if detail else line
    if kind == "AGENT_ADDED":
        info = (body.get("agent") or {}).get("agent_info") or {}
        return f"agent {_id(info.get('id'))} at {info.get('hostname', '?')}:{info.get('port', '?')}"
    if kind == "AGENT_REMOVED":
        return f"agent {_id(body.get('agent_id'))}"
    if kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
        framework = body.get("framework") or {}
        info = framework.get("framework_info") or {}
        state = "connected" if framework.get("connected") else "disconnected"
        return f"framework {_id(info.get('id'))} ({info.get('name', '?')}, role {info.get('role', '*')}): {state}"
    if kind == "FRAMEWORK_REMOVED":
        info = body.get("framework_info") or {}
        return f"framework {_id(info.get('id'))} ({info.get('name', '?')})"
    return ""


def run_events(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    timeout = MISSED_HEARTBEATS * DEFAULT_HEARTBEAT
    stream = http.open_stream(f"{args.master_url}{API}", {"type": "SUBSCRIBE"}, timeout)
    shown = 0
    try:
        for event in read_records(stream):
            kind = event.get("type")
            if kind == "HEARTBEAT" and not args.heartbeats:
                continue
            if args.json:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
            else:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                out.write(f"{stamp}  {kind:<17} {describe(event)}".rstrip() + "\n")
            out.flush()
            shown += 1
            if args.count is not None and shown >= args.count:
                return 0
    except TimeoutError:
        raise CLIError(f"no event nor heartbeat from {args.master_url} for {timeout:g} seconds; the stream is "
                       f"lost") from None
    except OSError as exc:
        raise CLIError(f"lost the event stream of {args.master_url}: {exc}") from None
    finally:
        stream.close()
    raise CLIError(f"{args.master_url} ended the event stream (it may no longer lead)")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    agents = subparsers.add_parser("agents", parents=[common], help="list the agents",
                                   description="List the master's agents (GET_AGENTS): their resources as "
                                               "allocated/total, attributes and state.")
    agents.add_argument("--json", action="store_true", help="print the GET_AGENTS answer as JSON")
    agents.set_defaults(func=run_agents)

    events = subparsers.add_parser("events", parents=[common], help="follow the cluster's events",
                                   description="Follow the master's event stream (SUBSCRIBE): one line per event "
                                               "(tasks, agents, frameworks) until interrupted.")
    events.add_argument("--json", action="store_true", help="print each event as one line of JSON")
    events.add_argument("--heartbeats", action="store_true", help="show HEARTBEAT events too")
    events.add_argument("-n", "--count", type=_positive, metavar="N", help="exit after N events")
    events.set_defaults(func=run_events)

    gone = subparsers.add_parser("mark-gone", parents=[common], help="mark an agent gone for good",
                                 description="Tell the master an agent is gone and never comes back "
                                             "(MARK_AGENT_GONE): its tasks end, and it may not register again.")
    gone.add_argument("agent_id", metavar="AGENT_ID", help="the ID of the agent")
    gone.set_defaults(func=run_mark_gone)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
