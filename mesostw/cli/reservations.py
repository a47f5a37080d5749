"""``mesostw reserve``, ``unreserve`` and ``volumes``: dynamic reservations and persistent volumes.

They speak the v1 operator API (RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES, DESTROY_VOLUMES,
and GET_AGENTS to find what an agent has), so they work against Mesos masters too. Resources are given
in the agent's ``--resources`` syntax (``cpus:2;mem:512``; ``cpus(eng):1`` names statically reserved
ones, to refine) and get one more dynamic reservation for ``--role``; a JSON array of v1 Resources is
sent as it is, for anything else (refining dynamic reservations, labels per resource).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from mesostw.cli.errors import CLIError, UsageError
from mesostw.cli.operator_api import call
from mesostw.cli.output import format_table, write_json
from mesostw.model.reservation import DYNAMIC, Reservation, describe, disk_of, is_dynamic, pushed, reservations_of
from mesostw.model.resources import Resources, format_scalar, to_millis
from mesostw.model.validation import ValidationError


def parse_labels(items: list[str] | None) -> tuple[tuple[str, str | None], ...]:
    """``key=value`` (or a bare ``key``) arguments as reservation labels."""
    labels = []
    for item in items or ():
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"bad label {item!r}: expected KEY=VALUE")
        labels.append((key, value if sep else None))
    return tuple(labels)


def reservation_of(args: argparse.Namespace) -> Reservation:
    if not args.role:
        raise UsageError("--role is required unless the resources are a JSON array")
    return Reservation(DYNAMIC, args.role, args.principal, parse_labels(args.label))


def resources_from(text: str, args: argparse.Namespace) -> Resources:
    """The resources to send: a JSON array as given, or ``--resources`` text with one more dynamic reservation."""
    try:
        if text.lstrip().startswith("["):
            if args.role or args.label:
                raise UsageError("--role and --label are for resources given as text; a JSON array says it all")
            return Resources.parse(text)
        reservation = reservation_of(args)
        plain = Resources.parse(text)
    except ValidationError as exc:
        raise UsageError(f"bad resources: {exc}") from None
    return Resources({pushed(key, reservation): value for key, value in plain.entries()})


def agent_of(master_url: str, agent_id: str) -> dict[str, Any]:
    """The GET_AGENTS entry of one agent."""
    answer = call(master_url, {"type": "GET_AGENTS"})
    agents = (answer or {}).get("get_agents", {}).get("agents", []) if isinstance(answer, dict) else []
    for agent in agents:
        if ((agent.get("agent_info") or {}).get("id") or {}).get("value") == agent_id:
            return agent
    raise CLIError(f"no agent {agent_id} is registered with {master_url}")


def _resources(entries: Any) -> Resources:
    """v1 Resources from an answer, without their allocation_info."""
    cleaned = [{k: v for k, v in r.items() if k != "allocation_info"} for r in entries or [] if isinstance(r, dict)]
    try:
        return Resources.from_json(cleaned)
    except ValidationError as exc:
        raise CLIError(f"the master described resources this command cannot read: {exc}") from None


def _send(args: argparse.Namespace, kind: str, field: str, resources: Resources) -> None:
    call(args.master_url, {"type": kind, kind.lower(): {"agent_id": {"value": args.agent_id},
                                                        field: resources.to_json()}})


# -- reserve / unreserve -------------------------------------------------------------------

def run_reserve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    resources = resources_from(args.resources, args)
    _send(args, "RESERVE_RESOURCES", "resources", resources)
    if args.json:
        write_json(out, resources.to_json())
    else:
        out.write(f"Reserved on agent {args.agent_id}: {resources}\n")
    return 0


def run_unreserve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.all:
        if args.resources:
            raise UsageError("give either RESOURCES or --all")
        if not args.role:
            raise UsageError("--all needs --role")
        total = _resources(agent_of(args.master_url, args.agent_id).get("total_resources"))
        resources = total.filter(lambda key: key[1] == args.role and is_dynamic(key) and disk_of(key) is None
                                 and (args.principal is None or reservations_of(key)[-1].principal == args.principal))
        if not resources:
            raise CLIError(f"agent {args.agent_id} has nothing dynamically reserved for role {args.role} "
                           f"that is not a volume")
    elif not args.resources:
        raise UsageError("give the RESOURCES to unreserve, or --all with --role")
    else:
        resources = resources_from(args.resources, args)
    _send(args, "UNRESERVE_RESOURCES", "resources", resources)
    if args.json:
        write_json(out, resources.to_json())
    else:
        out.write(f"Unreserved on agent {args.agent_id}: {resources}\n")
    return 0


# -- volumes -------------------------------------------------------------------------------

def volume_rows(agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every persistent volume of these GET_AGENTS entries, with its agent and whether a task uses it."""
    rows = []
    for agent in agents:
        agent_id = ((agent.get("agent_info") or {}).get("id") or {}).get("value", "?")
        used = _resources(agent.get("allocated_resources"))
        for key, value in _resources(agent.get("total_resources")).volumes().entries():
            disk = disk_of(key)
            assert disk is not None
            rows.append({"agent_id": agent_id, "role": key[1], "id": disk.persistence_id,
                         "size_mb": value / 1000 if isinstance(value, int) else value,
                         "container_path": disk.container_path, "principal": disk.principal,
                         "in_use": used.contains(Resources({key: value})),
                         "resource": Resources({key: value}).to_json()[0]})
    return rows


def run_volumes_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    answer = call(args.master_url, {"type": "GET_AGENTS"})
    agents = (answer or {}).get("get_agents", {}).get("agents", []) if isinstance(answer, dict) else []
    if args.agent:
        agents = [a for a in agents if ((a.get("agent_info") or {}).get("id") or {}).get("value") == args.agent]
    rows = volume_rows(agents)
    if args.json:
        write_json(out, rows)
        return 0
    if not rows:
        out.write("No persistent volumes.\n")
        return 0
    out.write(format_table(("AGENT", "ROLE", "ID", "SIZE", "PATH", "PRINCIPAL", "STATE"), [
        [r["agent_id"], r["role"], r["id"], f"{format_scalar(to_millis(r['size_mb']))} MB", r["container_path"],
         r["principal"] or "-", "in use" if r["in_use"] else "free"] for r in rows]))
    return 0


def run_volumes_create(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.size <= 0:
        raise UsageError("--size must be positive")
    total = _resources(agent_of(args.master_url, args.agent_id).get("total_resources"))
    wanted = to_millis(args.size)
    candidates = [(key, value) for key, value in total.entries()
                  if key[0] == "disk" and key[1] == args.role and disk_of(key) is None and isinstance(value, int)
                  and (args.reservation_principal is None
                       or reservations_of(key)[-1].principal == args.reservation_principal)]
    fitting = [key for key, value in candidates if value >= wanted]
    if not fitting:
        have = ", ".join(f"{describe(k)}:{format_scalar(v)}" for k, v in candidates) or "none"
        raise CLIError(f"agent {args.agent_id} has no disk reserved for role {args.role} with {args.size:g} MB "
                       f"(reserved disk of that role: {have}); reserve some first: mesostw reserve {args.agent_id} "
                       f"'disk:{args.size:g}' --role {args.role}")
    base = fitting[0]
    volume = Resources.from_json([{
        "name": "disk", "type": "SCALAR", "scalar": {"value": args.size},
        "reservations": [r.to_json() for r in reservations_of(base)],
        "disk": {"persistence": {"id": args.id, **({"principal": args.principal} if args.principal else {})},
                 "volume": {"container_path": args.path, "mode": "RW"}}}])
    _send(args, "CREATE_VOLUMES", "volumes", volume)
    if args.json:
        write_json(out, volume.to_json())
    else:
        out.write(f"Created volume {args.id} ({args.size:g} MB of role {args.role}) on agent {args.agent_id}; tasks "
                  f"see it at $MESOS_SANDBOX/{args.path}\n")
    return 0


def run_volumes_destroy(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    total = _resources(agent_of(args.master_url, args.agent_id).get("total_resources"))
    found = total.filter(lambda key: disk_of(key) is not None and disk_of(key).persistence_id == args.id  # type: ignore[union-attr]
                         and (args.role is None or key[1] == args.role))
    if not found:
        raise CLIError(f"agent {args.agent_id} has no persistent volume {args.id}"
                       + (f" of role {args.role}" if args.role else ""))
    if len(list(found.keys())) > 1:
        roles = ", ".join(sorted(k[1] for k in found.keys()))
        raise UsageError(f"volume {args.id} exists for several roles ({roles}); say which with --role")
    _send(args, "DESTROY_VOLUMES", "volumes", found)
    if args.json:
        write_json(out, found.to_json())
    else:
        out.write(f"Destroyed volume {args.id} on agent {args.agent_id}; its data is gone and its disk stays "
                  f"reserved\n")
    return 0


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    for name, func, verb in (("reserve", run_reserve, "Reserve"), ("unreserve", run_unreserve, "Unreserve")):
        parser = subparsers.add_parser(name, parents=[common], help=f"{verb.lower()} resources on an agent",
                                       description=f"{verb} resources on an agent dynamically "
                                                   f"({name.upper()}_RESOURCES): RESOURCES in the --resources "
                                                   f"syntax get a dynamic reservation for --role, a JSON array of "
                                                   f"v1 Resources is sent as it is.")
        parser.add_argument("agent_id", metavar="AGENT_ID")
        parser.add_argument("resources", metavar="RESOURCES", nargs="?" if name == "unreserve" else None,
                            help="e.g. 'cpus:2;mem:512', or a JSON array of Resources")
        parser.add_argument("--role", help="the role reserved for")
        parser.add_argument("--principal", help="the principal of the reservation (yours, when you authenticate)")
        parser.add_argument("--label", action="append", metavar="KEY=VALUE", help="a reservation label (repeatable)")
        parser.add_argument("--json", action="store_true", help="print the resources sent as JSON")
        if name == "unreserve":
            parser.add_argument("--all", action="store_true",
                                help="everything dynamically reserved for --role on the agent (but volumes)")
        parser.set_defaults(func=func)

    volumes = subparsers.add_parser("volumes", help="list, create and destroy persistent volumes",
                                    description="Persistent volumes: reserved disk that outlives tasks, offered "
                                                "again to its role with its data.")
    actions = volumes.add_subparsers(dest="volumes_command", metavar="ACTION", parser_class=type(volumes))
    actions.required = True
    listing = actions.add_parser("list", parents=[common], help="list the volumes of every agent")
    listing.add_argument("--agent", metavar="AGENT_ID", help="only this agent's")
    listing.add_argument("--json", action="store_true", help="print the volumes as JSON")
    listing.set_defaults(func=run_volumes_list)
    create = actions.add_parser("create", parents=[common], help="create a volume on reserved disk",
                                description="Create a persistent volume (CREATE_VOLUMES) on disk the agent has "
                                            "reserved for --role.")
    create.add_argument("agent_id", metavar="AGENT_ID")
    create.add_argument("id", metavar="VOLUME_ID", help="the persistence ID, unique per role on the agent")
    create.add_argument("--size", type=float, required=True, help="its size in MB")
    create.add_argument("--role", required=True, help="the role whose reserved disk it is made of")
    create.add_argument("--path", required=True, help="where tasks see it: a path relative to their sandbox")
    create.add_argument("--principal", help="its creator (yours, when you authenticate)")
    create.add_argument("--reservation-principal", help="use disk reserved by this principal")
    create.add_argument("--json", action="store_true", help="print the volume sent as JSON")
    create.set_defaults(func=run_volumes_create)
    destroy = actions.add_parser("destroy", parents=[common], help="destroy a volume and its data",
                                 description="Destroy a persistent volume (DESTROY_VOLUMES): its data is removed, "
                                             "its disk stays reserved. Refused while a task uses it.")
    destroy.add_argument("agent_id", metavar="AGENT_ID")
    destroy.add_argument("id", metavar="VOLUME_ID")
    destroy.add_argument("--role", help="the volume's role, when its ID is used by several")
    destroy.add_argument("--json", action="store_true", help="print the volume sent as JSON")
    destroy.set_defaults(func=run_volumes_destroy)
