"""``mesostw maintenance``, ``mesostw drain`` and ``mesostw agents deactivate|reactivate``: taking machines
and agents out of service over the v1 operator API.

- ``maintenance`` (or ``maintenance schedule``) shows the schedule; ``maintenance schedule set FILE``
  replaces it with a JSON Schedule (``-``: standard input), or ``maintenance schedule set --machines
  h1,h2 --start +1h --duration 2h`` with one window;
- ``maintenance status`` shows which machines are DRAINING (with the frameworks' answers to their
  inverse offers) and which are DOWN;
- ``maintenance down MACHINE...`` and ``maintenance up MACHINE...`` start and stop maintenance; a
  machine is ``HOSTNAME``, ``IP`` or ``HOSTNAME/IP``;
- ``drain AGENT [--grace 30s] [--mark-gone]`` drains an agent (DRAIN_AGENT);
- ``agents deactivate AGENT`` and ``agents reactivate AGENT`` (DEACTIVATE_AGENT, REACTIVATE_AGENT).

Every listing has ``--json``; refusals are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from mesostw.cli.errors import CLIError, UsageError
from mesostw.cli.operator_api import API, call
from mesostw.cli.output import format_table, write_json
from mesostw.model.units import format_duration, parse_duration

_SHORT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def nested(common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``common``'s options for a command's own actions (``mesostw agents deactivate ...``): given before the
    action or after it, they count (argparse would otherwise let the action's defaults win)."""
    parser = argparse.ArgumentParser(add_help=False)
    for action in common._actions:
        parser.add_argument(*action.option_strings, metavar=action.metavar, help=action.help,
                            default=argparse.SUPPRESS)
    return parser


def duration(text: str) -> float:
    """``30s``, ``5m``, ``2h``, ``1d``, or Mesos's ``30secs``, ``2mins``... as seconds."""
    text = text.strip()
    try:
        if text and text[-1] in _SHORT and text[:-1].replace(".", "", 1).isdigit():
            return float(text[:-1]) * _SHORT[text[-1]]
        return parse_duration(text)
    except ValueError:
        raise UsageError(f"bad duration {text!r}: expected e.g. 30s, 5m, 2h or 10mins") from None


def when(text: str, now: float | None = None) -> float:
    """``now``, ``+2h`` (from now), an ISO 8601 time, or seconds since the epoch, as seconds since the epoch."""
    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("+"):
        return now + duration(text[1:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"bad time {text!r}: expected now, +2h, 2030-01-31T12:00 or seconds since the epoch"
                         ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as people mean it
    return moment.timestamp()


def machine(text: str) -> dict[str, str]:
    """``HOSTNAME``, ``IP`` or ``HOSTNAME/IP`` as a MachineID."""
    hostname, _, ip = text.strip().partition("/")
    if not ip:
        try:
            ipaddress.IPv4Address(hostname)
        except ValueError:
            pass
        else:
            hostname, ip = "", hostname
    if not hostname and not ip:
        raise UsageError(f"bad machine {text!r}: expected HOSTNAME, IP or HOSTNAME/IP")
    return {k: v for k, v in (("hostname", hostname), ("ip", ip)) if v}


def machine_text(machine_id: Any) -> str:
    if not isinstance(machine_id, dict):
        return "?"
    return "/".join(part for part in (machine_id.get("hostname", ""), machine_id.get("ip", "")) if part) or "?"


def _time_text(nanos: Any) -> str:
    if not isinstance(nanos, int):
        return "?"
    return datetime.fromtimestamp(nanos / 1e9, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _answer(args: argparse.Namespace, call_type: str) -> Any:
    answer = call(args.master_url, {"type": call_type})
    body = answer.get(call_type.lower()) if isinstance(answer, dict) else None
    if not isinstance(body, dict):
        raise CLIError(f"{args.master_url}{API} answered {call_type} without {call_type.lower()}")
    return body


# -- the schedule ---------------------------------------------------------------------------------

def run_schedule(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    schedule = _answer(args, "GET_MAINTENANCE_SCHEDULE").get("schedule") or {}
    if args.json:
        write_json(out, schedule)
        return 0
    rows = []
    for window in schedule.get("windows") or []:
        unavailability = window.get("unavailability") or {}
        length = (unavailability.get("duration") or {}).get("nanoseconds")
        for machine_id in window.get("machine_ids") or []:
            rows.append([machine_text(machine_id), _time_text((unavailability.get("start") or {}).get("nanoseconds")),
                         format_duration(length / 1e9) if isinstance(length, int) else "-"])
    if not rows:
        out.write("No maintenance is scheduled.\n")
        return 0
    out.write(format_table(("MACHINE", "START", "DURATION"), rows))
    return 0


def run_schedule_set(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.file is not None:
        if args.machines or args.start or args.duration:
            raise UsageError("give a schedule FILE, or --machines with --start (and --duration), not both")
        schedule = _read_schedule(args.file)
    elif args.machines:
        unavailability: dict[str, Any] = {"start": {"nanoseconds": int(when(args.start or "now") * 1e9)}}
        if args.duration:
            unavailability["duration"] = {"nanoseconds": int(duration(args.duration) * 1e9)}
        schedule = {"windows": [{"machine_ids": [machine(m) for m in args.machines.split(",") if m.strip()],
                                 "unavailability": unavailability}]}
    else:
        raise UsageError("give a schedule FILE ('-' for standard input) or --machines (an empty schedule: '{}')")
    call(args.master_url, {"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {
        "schedule": schedule}})
    machines = sum(len(w.get("machine_ids") or []) for w in schedule.get("windows") or [])
    out.write(f"The maintenance schedule lists {machines} machine(s).\n")
    return 0


def _read_schedule(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from None
    try:
        schedule = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"{path} is not JSON: {exc}") from None
    if not isinstance(schedule, dict):
        raise CLIError(f"{path} must hold a JSON Schedule object ({{\"windows\": [...]}})")
    return schedule


# -- status, down, up ---------------------------------------------------------------------------------

def run_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    status = _answer(args, "GET_MAINTENANCE_STATUS").get("status") or {}
    if args.json:
        write_json(out, status)
        return 0
    rows = []
    for draining in status.get("draining_machines") or []:
        answers = ", ".join(f"{(s.get('framework_id') or {}).get('value', '?')}={s.get('status', '?')}"
                            for s in draining.get("statuses") or [])
        rows.append([machine_text(draining.get("id")), "DRAINING", answers or "-"])
    rows += [[machine_text(m), "DOWN", "-"] for m in status.get("down_machines") or []]
    if not rows:
        out.write("Every machine is up.\n")
        return 0
    out.write(format_table(("MACHINE", "MODE", "INVERSE OFFER ANSWERS"), rows))
    return 0


def run_down(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    machines = [machine(m) for m in args.machines]
    call(args.master_url, {"type": "START_MAINTENANCE", "start_maintenance": {"machines": machines}})
    out.write(f"Down: {', '.join(machine_text(m) for m in machines)} (their agents are removed).\n")
    return 0


def run_up(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    machines = [machine(m) for m in args.machines]
    call(args.master_url, {"type": "STOP_MAINTENANCE", "stop_maintenance": {"machines": machines}})
    out.write(f"Up: {', '.join(machine_text(m) for m in machines)} (out of the schedule; their agents may "
              f"register).\n")
    return 0


# -- agents ----------------------------------------------------------------------------------------------

def run_drain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    body: dict[str, Any] = {"agent_id": {"value": args.agent_id}}
    if args.grace is not None:
        body["max_grace_period"] = f"{duration(args.grace):g}s"
    if args.mark_gone:
        body["mark_gone"] = True
    call(args.master_url, {"type": "DRAIN_AGENT", "drain_agent": body})
    then = "marked gone" if args.mark_gone else "DRAINED"
    out.write(f"Agent {args.agent_id} is DRAINING: it gets no offers and its tasks are killed; once none is left "
              f"it is {then}.\n")
    return 0


def run_deactivate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    call(args.master_url, {"type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": args.agent_id}}})
    out.write(f"Agent {args.agent_id} is deactivated: it gets no offers (its tasks keep running).\n")
    return 0


def run_reactivate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    call(args.master_url, {"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": args.agent_id}}})
    out.write(f"Agent {args.agent_id} is active again.\n")
    return 0


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    maintenance = subparsers.add_parser("maintenance", parents=[common], help="schedule and do machine maintenance",
                                        description="Show or replace the maintenance schedule, see which machines "
                                                    "are draining or down, take machines down and bring them up.")
    maintenance.add_argument("--json", action="store_true", help="print the Schedule as JSON")
    maintenance.set_defaults(func=run_schedule)
    inner = nested(common)
    actions = maintenance.add_subparsers(dest="maintenance_command", metavar="ACTION", parser_class=type(maintenance))
    schedule = actions.add_parser("schedule", parents=[inner], help="show (or set) the schedule")
    schedule.add_argument("--json", action="store_true", help="print the Schedule as JSON")
    schedule.set_defaults(func=run_schedule)
    schedule_actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", parser_class=type(schedule))
    set_ = schedule_actions.add_parser("set", parents=[inner], help="replace the schedule",
                                       description="Replace the schedule with FILE's JSON Schedule, or with one "
                                                   "window of --machines from --start for --duration.")
    set_.add_argument("file", nargs="?", metavar="FILE", help="a JSON Schedule ('-': standard input)")
    set_.add_argument("--machines", metavar="M1,M2", help="the window's machines (HOSTNAME, IP or HOSTNAME/IP)")
    set_.add_argument("--start", metavar="WHEN", help="when the window starts: now, +2h, an ISO 8601 time "
                                                      "(default: now)")
    set_.add_argument("--duration", metavar="DURATION", help="how long the machines may be down (e.g. 2h)")
    set_.set_defaults(func=run_schedule_set)
    status = actions.add_parser("status", parents=[inner], help="the machines draining and down")
    status.add_argument("--json", action="store_true", help="print the ClusterStatus as JSON")
    status.set_defaults(func=run_status)
    down = actions.add_parser("down", parents=[inner], help="start maintenance: machines go DOWN")
    down.add_argument("machines", nargs="+", metavar="MACHINE", help="HOSTNAME, IP or HOSTNAME/IP")
    down.set_defaults(func=run_down)
    up = actions.add_parser("up", parents=[inner], help="stop maintenance: machines come UP")
    up.add_argument("machines", nargs="+", metavar="MACHINE", help="HOSTNAME, IP or HOSTNAME/IP")
    up.set_defaults(func=run_up)

    drain = subparsers.add_parser("drain", parents=[common], help="drain an agent",
                                  description="Drain an agent (DRAIN_AGENT): no more offers, its tasks killed; "
                                              "DRAINED (or gone) once none is left.")
    drain.add_argument("agent_id", metavar="AGENT_ID")
    drain.add_argument("--grace", metavar="DURATION", help="at most this long between SIGTERM and SIGKILL (e.g. 30s)")
    drain.add_argument("--mark-gone", action="store_true", help="mark the agent gone once drained (irreversible)")
    drain.set_defaults(func=run_drain)


def register_agent_actions(agents: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """``mesostw agents deactivate|reactivate AGENT_ID``, under ``mesostw agents``."""
    inner = nested(common)
    actions = agents.add_subparsers(dest="agents_command", metavar="ACTION", parser_class=type(agents))
    deactivate = actions.add_parser("deactivate", parents=[inner], help="offer an agent's resources no more",
                                    description="Deactivate an agent (DEACTIVATE_AGENT): it gets no offers; its "
                                                "tasks keep running.")
    deactivate.add_argument("agent_id", metavar="AGENT_ID")
    deactivate.set_defaults(func=run_deactivate)
    reactivate = actions.add_parser("reactivate", parents=[inner], help="offer an agent's resources again",
                                    description="Reactivate an agent (REACTIVATE_AGENT), after a deactivation or a "
                                                "drain that ended.")
    reactivate.add_argument("agent_id", metavar="AGENT_ID")
    reactivate.set_defaults(func=run_reactivate)
