"""What the commands print: tables a person reads, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO


def write_json(out: TextIO, value: Any, sort_keys: bool = False) -> None:
    """``value`` as indented JSON on a line of its own (what ``--json`` prints)."""
    json.dump(value, out, indent=2, sort_keys=sort_keys)
    out.write("\n")


def format_table(header: Iterable[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart; trailing spaces trimmed."""
    header = list(header)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines) + "\n"
