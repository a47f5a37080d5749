"""RecordIO framing (Mesos's streaming format): ``<decimal length>\\n<record>``, repeated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def encode(record: bytes) -> bytes:
    return str(len(record)).encode("ascii") + b"\n" + record


def encode_json(value: Any) -> bytes:
    return encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


class Decoder:
    """Incremental decoder: feed bytes, get complete records."""

    def __init__(self, max_record: int = 64 * 1024 * 1024):
        self._buffer = b""
        self._max = max_record

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > 20:
                    raise ValueError("RecordIO length prefix is too long")
                return
            header = self._buffer[:newline]
            if not header.isdigit():
                raise ValueError(f"bad RecordIO length {header[:20]!r}")
            length = int(header)
            if length > self._max:
                raise ValueError(f"RecordIO record of {length} bytes is too large")
            end = newline + 1 + length
            if len(self._buffer) < end:
                return
            record, self._buffer = self._buffer[newline + 1:end], self._buffer[end:]
            yield record
