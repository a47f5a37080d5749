"""``mesostw cat`` and ``mesostw tail``: a task's sandbox files, read through the agent's ``/files/read``.

The task is found in ``/master/state``, its agent's address in the agent's pid, its sandbox in the
agent's ``/slave(1)/state`` (the executor's ``directory``), as ``mesos-cat``/``mesos-tail`` do.
``/files/read`` answers ``{"offset": size, "data": ""}`` for ``offset=-1``, so sizes are asked for
and byte ranges read in chunks of at most 64 KiB (the most the agent gives in one read).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from mesostw.cli import http
from mesostw.cli.errors import CLIError
from mesostw.cli.state import agent_url, find_task, master_state, sandbox_directory

CHUNK = 64 * 1024
POLL_INTERVAL = 0.5
#: How ``tail -f`` waits between polls (tests replace it).
sleep: Callable[[float], None] = time.sleep


class RemoteFile:
    """A file on an agent, read with ``/files/read``."""

    def __init__(self, agent: str, path: str, label: str | None = None):
        self.agent = agent
        self.path = path
        self.label = label or path

    def _read(self, offset: int, length: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"path": self.path, "offset": offset}
        if length is not None:
            params["length"] = length
        try:
            answer = http.get_json(f"{self.agent}/files/read", params)
        except http.HTTPStatusError as exc:
            if exc.status == 404:
                raise CLIError(f"No such file: {self.label}") from None
            raise CLIError(f"cannot read {self.label}: {exc.message}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), str):
            raise CLIError(f"unexpected answer from {self.agent}/files/read")
        return answer

    def size(self) -> int:
        return int(self._read(-1)["offset"])

    def read(self, offset: int, length: int) -> str:
        return str(self._read(offset, length)["data"])

    def chunks(self, start: int, end: int) -> Iterator[str]:
        """The bytes ``[start, end)`` as text, in chunks; stops early if the file shrank."""
        position = start
        while position < end:
            length = min(CHUNK, end - position)
            data = self.read(position, length)
            if not data:
                return
            yield data
            position += length

    def tail(self, size: int, lines: int) -> str:
        """The last ``lines`` lines of the first ``size`` bytes, reading backwards chunk by chunk."""
        if lines <= 0:
            return ""
        pieces: list[str] = []
        start, newlines = size, 0
        while start > 0 and newlines <= lines:
            chunk_start = max(0, start - CHUNK)
            text = "".join(self.chunks(chunk_start, start))
            pieces.append(text)
            newlines += text.count("\n")
            start = chunk_start
        return last_lines("".join(reversed(pieces)), lines)


def last_lines(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text``, as ``tail -n`` prints them (a final newline ends a line)."""
    if lines <= 0:
        return ""
    body = text[:-1] if text.endswith("\n") else text
    cut = len(body)
    for _ in range(lines):
        cut = body.rfind("\n", 0, cut)
        if cut < 0:
            return text
    return text[cut + 1:]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    located = argparse.ArgumentParser(add_help=False)
    located.add_argument("task_id", metavar="TASK_ID", help="the task whose sandbox to read")
    located.add_argument("file", metavar="FILE", nargs="?", default="stdout",
                         help="a path inside the sandbox (default: stdout)")
    located.add_argument("--framework", metavar="FRAMEWORK_ID", help="the task's framework, if its ID is ambiguous")

    cat = subparsers.add_parser("cat", parents=[common, located], help="print a file of a task's sandbox",
                                description="Print a file from a task's sandbox (default: stdout).")
    cat.set_defaults(func=run_cat)

    tail = subparsers.add_parser("tail", parents=[common, located], help="print the end of a file of a task's sandbox",
                                 description="Print the last lines of a file from a task's sandbox "
                                             "(default: stdout), and optionally follow it.")
    tail.add_argument("-n", "--lines", metavar="LINES", type=_lines, default=10,
                      help="how many lines to print (default: 10)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing what is appended, until Ctrl-C")
    tail.set_defaults(func=run_tail)


def _lines(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of lines: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid number of lines: {text!r}")
    return value


def locate(args: argparse.Namespace) -> RemoteFile:
    """The task's ``FILE`` on its agent."""
    state = master_state(args.master_url)
    entry = find_task(state, args.task_id, args.framework)
    scheme = args.master_url.split("://", 1)[0]
    agent = agent_url(state, entry.agent_id, scheme)
    agent_state = http.get_json(f"{agent}/slave(1)/state")
    if not isinstance(agent_state, dict):
        raise CLIError(f"{agent}/slave(1)/state is not a JSON object")
    directory = sandbox_directory(agent_state, entry.framework_id, entry.id)
    relative = args.file.lstrip("/")
    return RemoteFile(agent, f"{directory.rstrip('/')}/{relative}", label=f"'{relative}' in the sandbox of "
                                                                          f"task '{entry.id}'")


def run_cat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    remote = locate(args)
    for data in remote.chunks(0, remote.size()):
        out.write(data)
    out.flush()
    return 0


def run_tail(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    remote = locate(args)
    size = remote.size()
    out.write(remote.tail(size, args.lines))
    out.flush()
    if not args.follow:
        return 0
    try:
        follow(remote, size, out)
    except KeyboardInterrupt:
        pass
    return 0


def follow(remote: RemoteFile, offset: int, out: TextIO) -> None:
    """Print what is appended after ``offset``, polling until interrupted; from the start if truncated."""
    while True:
        sleep(POLL_INTERVAL)
        size = remote.size()
        if size < offset:  # truncated (a rotated log): start over, as tail -f does
            offset = 0
        if size > offset:
            for data in remote.chunks(offset, size):
                out.write(data)
            out.flush()
            offset = size
