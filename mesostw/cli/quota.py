"""``mesostw quota``: the roles' quotas over the v1 operator API.

``mesostw quota`` (or ``quota show``) lists every role's guarantees and limits (GET_QUOTA) with what it
consumes (``/roles``); ``quota set ROLE --guarantee cpus=2,mem=1024 --limit cpus=4`` gives a role its
quota (UPDATE_QUOTA; a role given only one of the two has none of the other); ``quota remove ROLE``
takes it away. ``--json`` prints the QuotaStatus for scripts; ``--force`` passes Mesos's checks of
consumption and cluster capacity.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, TextIO

from mesostw.cli import http
from mesostw.cli.errors import CLIError, UsageError
from mesostw.cli.maintenance import nested
from mesostw.cli.operator_api import API, call
from mesostw.cli.output import format_table, write_json


def parse_amounts(text: str, what: str) -> dict[str, float]:
    """``cpus=2,mem=1024`` (or ``cpus:2;mem:1024``) into name -> amount."""
    amounts: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        name, sep, value = part.replace(":", "=", 1).partition("=")
        name = name.strip()
        try:
            amount = float(value)
        except ValueError:
            amount = math.nan
        if not sep or not name or not math.isfinite(amount) or amount < 0:
            raise UsageError(f"bad {what} {part!r}: expected NAME=AMOUNT (e.g. cpus=2,mem=1024)")
        if name in amounts:
            raise UsageError(f"bad {what}: {name} is given twice")
        amounts[name] = amount
    return amounts


def _scalars(amounts: Any) -> dict[str, float]:
    """A QuotaConfig map (``{"cpus": {"value": 2}}``) as name -> amount."""
    out = {}
    for name, value in (amounts or {}).items():
        if isinstance(value, dict) and isinstance(value.get("value"), (int, float)):
            out[name] = float(value["value"])
    return out


def amounts_text(amounts: dict[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in sorted(amounts.items())) or "-"


def run_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    answer = call(args.master_url, {"type": "GET_QUOTA"})
    status = (answer.get("get_quota") or {}).get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        raise CLIError(f"{args.master_url}{API} answered GET_QUOTA without a status")
    if args.json:
        write_json(out, status)
        return 0
    configs = status.get("configs") or []
    if not configs:
        out.write("No role has a quota.\n")
        return 0
    consumed = _consumption(args.master_url)
    rows = [[config.get("role", "?"), amounts_text(_scalars(config.get("guarantees"))),
             amounts_text(_scalars(config.get("limits"))), amounts_text(consumed.get(config.get("role"), {}))]
            for config in configs]
    out.write(format_table(("ROLE", "GUARANTEES", "LIMITS", "CONSUMED"), rows))
    return 0


def _consumption(master_url: str) -> dict[str, dict[str, float]]:
    """Role -> what it consumes, from ``/roles`` (Mesos 1.9+'s ``quota.consumed``); nothing if unavailable."""
    try:
        roles = http.get_json(f"{master_url}/roles")
    except CLIError:
        return {}
    out = {}
    for role in roles.get("roles", []) if isinstance(roles, dict) else []:
        consumed = (role.get("quota") or {}).get("consumed")
        if isinstance(consumed, dict):
            out[role.get("name")] = {k: float(v) for k, v in consumed.items() if isinstance(v, (int, float))}
    return out


def run_set(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.guarantee is None and args.limit is None:
        raise UsageError("give --guarantee, --limit or both (to remove a quota: 'mesostw quota remove ROLE')")
    config: dict[str, Any] = {"role": args.role}
    for key, text in (("guarantees", args.guarantee), ("limits", args.limit)):
        if text is not None:
            config[key] = {name: {"value": value}
                           for name, value in parse_amounts(text, key[:-1]).items()}
    body = {"quota_configs": [config], **({"force": True} if args.force else {})}
    call(args.master_url, {"type": "UPDATE_QUOTA", "update_quota": body})
    out.write(f"Role {args.role}: guarantees {amounts_text(_scalars(config.get('guarantees')))}, limits "
              f"{amounts_text(_scalars(config.get('limits')))}.\n")
    return 0


def run_remove(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    call(args.master_url, {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{"role": args.role}]}})
    out.write(f"Role {args.role} has no quota any more.\n")
    return 0


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    quota = subparsers.add_parser("quota", parents=[common], help="show or change the roles' quotas",
                                  description="Show the roles' quotas (guarantees, limits, consumption), or set "
                                              "or remove one.")
    quota.add_argument("--json", action="store_true", help="print GET_QUOTA's QuotaStatus as JSON")
    quota.set_defaults(func=run_show)
    inner = nested(common)
    actions = quota.add_subparsers(dest="quota_command", metavar="ACTION", parser_class=type(quota))
    show = actions.add_parser("show", parents=[inner], help="list the quotas (the default)")
    show.add_argument("--json", action="store_true", help="print GET_QUOTA's QuotaStatus as JSON")
    show.set_defaults(func=run_show)
    set_ = actions.add_parser("set", parents=[inner], help="give a role its quota",
                              description="Give ROLE guarantees and limits (UPDATE_QUOTA); what is not given is "
                                          "not kept.")
    set_.add_argument("role", metavar="ROLE")
    set_.add_argument("--guarantee", metavar="NAME=AMOUNT,...", help="what the role is entitled to (cpus=2,mem=1024)")
    set_.add_argument("--limit", metavar="NAME=AMOUNT,...", help="what the role may never exceed (cpus=4)")
    set_.add_argument("--force", action="store_true", help="pass the checks of consumption and cluster capacity")
    set_.set_defaults(func=run_set)
    remove = actions.add_parser("remove", parents=[inner], help="take a role's quota away")
    remove.add_argument("role", metavar="ROLE")
    remove.set_defaults(func=run_remove)
