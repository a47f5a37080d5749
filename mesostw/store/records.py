"""The file store's on-disk encoding: checksummed records of operations.

A record is a 4-byte big-endian payload length, the payload's CRC-32, then the payload. A
payload is a sequence of operations, each ``P`` + path + value or ``D`` + path, with every
path and value prefixed by its 4-byte length. A torn record (a crash in the middle of an append)
is recognised by its short length or wrong checksum, and everything from it on is dropped.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from mesostw.store import Delete, Operation, Put

_HEADER = struct.Struct(">II")
_LENGTH = struct.Struct(">I")
#: A snapshot file starts with this line and its generation (8 bytes), then one record of Puts.
MAGIC = b"mesostw-store 1\n"
_GENERATION = struct.Struct(">Q")


class CorruptRecord(ValueError):
    """A payload that does not decode (it passed its checksum, so the file was written so)."""


def encode(operations: Iterable[Operation]) -> bytes:
    parts: list[bytes] = []
    for op in operations:
        path = op.path.encode()
        if isinstance(op, Put):
            parts += (b"P", _LENGTH.pack(len(path)), path, _LENGTH.pack(len(op.value)), op.value)
        else:
            parts += (b"D", _LENGTH.pack(len(path)), path)
    return b"".join(parts)


def encode_values(items: Iterable[tuple[str, bytes]]) -> bytes:
    """A payload of one Put per value (a snapshot's)."""
    return encode(Put(path, value) for path, value in items)


def decode(payload: bytes) -> list[Operation]:
    operations: list[Operation] = []
    offset, end = 0, len(payload)
    unpack = _LENGTH.unpack_from
    try:
        while offset < end:
            kind = payload[offset:offset + 1]
            (size,) = unpack(payload, offset + 1)
            path = payload[offset + 5:offset + 5 + size].decode()
            offset += 5 + size
            if kind == b"P":
                (size,) = unpack(payload, offset)
                value = payload[offset + 4:offset + 4 + size]
                offset += 4 + size
                operations.append(Put(path, value))
            elif kind == b"D":
                operations.append(Delete(path))
            else:
                raise CorruptRecord(f"unknown operation {kind!r}")
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptRecord(str(exc)) from None
    if offset != end:
        raise CorruptRecord("an operation runs past the end of its record")
    return operations


def decode_values(payload: bytes) -> list[tuple[str, bytes]]:
    """A snapshot's payload (Puts only) as (path, value) pairs, without building operations."""
    values: list[tuple[str, bytes]] = []
    offset, end = 0, len(payload)
    unpack = _LENGTH.unpack_from
    try:
        while offset < end:
            if payload[offset] != 0x50:  # "P"
                raise CorruptRecord("a snapshot holds only values")
            (size,) = unpack(payload, offset + 1)
            start = offset + 5 + size
            (length,) = unpack(payload, start)
            values.append((payload[offset + 5:start].decode(), payload[start + 4:start + 4 + length]))
            offset = start + 4 + length
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptRecord(str(exc)) from None
    if offset != end:
        raise CorruptRecord("a value runs past the end of the snapshot")
    return values


def record(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(data: bytes, offset: int = 0) -> tuple[list[bytes], int]:
    """The intact payloads from ``offset`` on, and where the first torn or corrupt record starts
    (``len(data)`` when there is none)."""
    payloads: list[bytes] = []
    end = len(data)
    while offset + _HEADER.size <= end:
        size, checksum = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if start + size > end:
            break
        payload = data[start:start + size]
        if zlib.crc32(payload) != checksum:
            break
        payloads.append(payload)
        offset = start + size
    return payloads, offset


def snapshot(generation: int, items: Iterable[tuple[str, bytes]]) -> bytes:
    return MAGIC + _GENERATION.pack(generation) + record(encode_values(items))


def read_snapshot(data: bytes) -> tuple[int, list[tuple[str, bytes]]]:
    """(generation, every (path, value)); ValueError when the file is not a whole snapshot."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _GENERATION.size:
        raise ValueError("not a mesostw store snapshot")
    (generation,) = _GENERATION.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _GENERATION.size
    payloads, end = read_records(data, start)
    if len(payloads) != 1 or end != len(data):
        raise ValueError("the snapshot is truncated or corrupt")
    return generation, decode_values(payloads[0])
