"""The native command executor: :mod:`mesostw.executor.command`'s behaviour for a plain command task
(no health check, no TLS) in C (``command_executor.c``), forked by the launcher without running any
Python in the child (see :mod:`mesostw.executor.zygote`).

The library is built by setup.py (``lib/command*.so``, a plain shared library loaded with :mod:`ctypes`);
without it (no C compiler where mesostw was installed) :func:`library` is None and every task runs
the Python command executor.
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

from mesostw.wire.preambles import EXECUTOR as PREAMBLE

#: What the library and :func:`spec` agree on (the spec's first string).
VERSION = b"mesostw-native-1"
_HERE = os.path.dirname(os.path.abspath(__file__))
_loaded: list[Any] = []


def library_path() -> str | None:
    """Where the built library is, if it is."""
    found = sorted(glob.glob(os.path.join(_HERE, "lib", "command*.so")))
    return found[0] if found else None


def library() -> ctypes.CDLL | None:
    """The loaded library (once per process), or None when it is missing or not this version."""
    if _loaded:
        return _loaded[0]
    lib = None
    path = library_path()
    if path is not None:
        try:
            lib = ctypes.CDLL(path, use_errno=True)
            lib.mesostw_native_version.restype = ctypes.c_char_p
            if lib.mesostw_native_version() != VERSION:
                lib = None
        except (OSError, AttributeError):
            lib = None
    if lib is not None:
        lib.mesostw_spawn.restype = ctypes.c_long
        lib.mesostw_spawn.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
        lib.mesostw_json_reencode.restype = ctypes.c_long
        lib.mesostw_json_reencode.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
        lib.mesostw_records.restype = ctypes.c_long
        lib.mesostw_records.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                                        ctypes.POINTER(ctypes.c_size_t))
    _loaded.append(lib)
    return lib


def available() -> bool:
    return library() is not None


def spec(request: dict[str, Any], user: tuple[str, int, int] | None) -> bytes:
    """What :c:func:`mesostw_spawn` reads: the launcher request's files, cgroups and environment (checked:
    strings only) and the user to switch to (name, uid, gid), as NUL-terminated strings.

    Raises ValueError for a string holding a NUL (which no path, name or variable can).
    """
    name, uid, gid = user if user is not None else ("", 0, 0)
    env = request["env"]
    cgroups = request.get("cgroups") or []
    texts = [request["stdout"], request["stderr"], request["cwd"]]
    fields = [VERSION, *(os.fsencode(text) for text in texts), PREAMBLE,
              *(os.fsencode(text) for text in [name, str(uid), str(gid), str(len(cgroups)), *cgroups, str(len(env)),
                                               *(f"{key}={value}" for key, value in env.items())])]
    if any(b"\0" in field for field in fields):
        raise ValueError("paths and environment variables cannot hold NUL characters")
    return b"\0".join(fields) + b"\0"


def spawn(blob: bytes, report: int) -> int:
    """Fork the native command executor for ``blob`` (:func:`spec`); its pid. What fails before the
    executor runs is written to ``report``."""
    lib = library()
    if lib is None:
        raise OSError(2, "the native command executor is not built")
    pid = lib.mesostw_spawn(blob, len(blob), report)
    if pid < 0:
        raise OSError(-pid, os.strerror(-pid))
    return int(pid)


def reencode(text: bytes) -> bytes | None:
    """``text`` parsed and written again by the library's JSON code; None when it is malformed (for tests)."""
    lib = library()
    assert lib is not None
    size = len(text) * 6 + 64
    out = ctypes.create_string_buffer(size)
    n = lib.mesostw_json_reencode(text, len(text), out, size)
    if n == -1:
        return None
    if n < 0:
        raise MemoryError(n)
    return out.raw[:n]


def records(stream: bytes) -> tuple[list[bytes], int] | None:
    """The records of a RecordIO ``stream`` as the library reads them (each re-encoded) and how many
    bytes wait for the rest of a record; None when the stream is malformed (for tests)."""
    lib = library()
    assert lib is not None
    size = len(stream) * 6 + 64
    out = ctypes.create_string_buffer(size)
    rest = ctypes.c_size_t(0)
    n = lib.mesostw_records(stream, len(stream), out, size, ctypes.byref(rest))
    if n == -1:
        return None
    if n < 0:
        raise MemoryError(n)
    text = out.raw[:len(out.raw)]
    lines = text.split(b"\n")[:n] if n else []
    return lines, rest.value
