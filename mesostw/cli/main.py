"""``mesostw <command>``: parse the command line, dispatch, and turn expected failures into one line.

Usage errors exit 2 and runtime errors exit 1, each printed as ``mesostw <cmd>: <message>`` on
stderr; tracebacks are left for bugs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from mesostw.cli import apps, execute, http, maintenance, operator_api, quota, reservations, sandbox, state, tasks
from mesostw.cli.errors import CLIError, UsageError
from mesostw.zk.url import is_zk

COMMANDS = (execute, state, tasks, sandbox, operator_api, reservations, quota, maintenance, apps)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')", command=self.prog)


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--master", metavar="HOST:PORT",
                        help=f"the leading master, host:port or http://host:port, or zk://host:port/path "
                             f"(default: $MESOS_MASTER, else {http.DEFAULT_MASTER})")
    parser = Parser(prog="mesostw", description="Operate a mesostw (or Mesos) cluster.")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=Parser)
    subparsers.required = True
    for module in COMMANDS:
        module.register(subparsers, common)
    maintenance.register_agent_actions(subparsers.choices["agents"], common)
    return parser


def run(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Run one command; returns the exit status and never raises for expected failures."""
    parser = build_parser()
    command = "mesostw"
    try:
        try:
            args, extras = parser.parse_known_args(list(argv))
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        actions = [getattr(args, key) for key in ("apps_command", "agents_command", "quota_command",
                                                  "maintenance_command", "volumes_command")
                   if getattr(args, key, None)]
        command = " ".join(["mesostw", args.subcommand, *actions])
        if extras:
            raise UsageError(f"unrecognized arguments: {' '.join(extras)} (see '{command} --help')")
        if "master" in args:  # the commands that talk to the master (not `apps`, which talks to a framework)
            master = args.master or os.environ.get("MESOS_MASTER") or http.DEFAULT_MASTER
            if getattr(args, "follows_leader", False) and is_zk(master):
                # A long-running command keeps the zk:// URL and follows the leader for as long as it
                # runs, as mesos-execute does; looking it up once would pin it to a master that may die.
                args.master, args.master_url = master, None
            else:
                args.master = resolve(master)
                args.master_url = http.base_url(args.master)
        return int(args.func(args, out, err))
    except CLIError as exc:
        err.write(f"{exc.command or command}: {exc.message}\n")
        err.flush()
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def resolve(master: str) -> str:
    """A ``zk://`` master (or a file:// holding one) becomes the elected leader's host:port."""
    if not is_zk(master):
        return master
    from mesostw.detector import find_leader

    try:
        leader = find_leader(master)
    except (LookupError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return f"{leader.hostname}:{leader.port}"


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``mesostw`` console script."""
    try:
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass
    try:
        code = run(sys.argv[1:] if argv is None else argv, sys.stdout, sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``mesostw cat ... | head``): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    sys.exit(code)
