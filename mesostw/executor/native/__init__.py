"""The native command executor: :mod:`mesostw.executor.command`'s behaviour for a plain command task
(no health check, no TLS) in C, as a program of its own (``lib/mesos-executor``, built by setup.py from
``executor.c`` and ``codec.c``) that the launcher (:mod:`mesostw.executor.zygote`) spawns.

Spawned rather than forked: a fork of the launcher copies its page tables and, as it ends, tears them
down (about half a millisecond of CPU for a 10 MB interpreter), where a vfork and an exec of a small
static program cost less than half of that, and no Python at all runs for the executor.

Without the program (no C compiler where mesostw was installed) :func:`available` is false and every
task runs the Python command executor. ``lib/codec*.so`` is the program's JSON and RecordIO code as a
plain shared library, which the tests load with :mod:`ctypes` (:func:`reencode`, :func:`records`).
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

from mesostw.wire.preambles import EXECUTOR as PREAMBLE

#: What the program's command line and the library's version say.
VERSION = b"mesostw-native-1"
_LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")
#: The native command executor's program.
PROGRAM = os.path.join(_LIB, "mesos-executor")
_loaded: list[Any] = []


def available() -> bool:
    """Whether the native command executor is built here."""
    return os.access(PROGRAM, os.X_OK)


def spec(request: dict[str, Any], user: tuple[str, int, int] | None) -> list[bytes]:
    """The program's arguments (after its version and report descriptor) for a launcher request (checked:
    strings only): its files, the agent's stream preamble, the user to switch to (name, uid, gid; its
    groups looked up here, so that the program needs no name service) and the cgroups to join.

    Raises ValueError for a path holding a NUL (which no path can).
    """
    uid = gid = groups = ""
    if user is not None:
        name, user_id, group_id = user
        uid, gid = str(user_id), str(group_id)
        groups = ",".join(str(g) for g in os.getgrouplist(name, group_id))
    cgroups = request.get("cgroups") or []
    fields = [os.fsencode(request[key]) for key in ("stdout", "stderr", "cwd")] + [PREAMBLE] + [
        os.fsencode(text) for text in (uid, gid, groups, str(len(cgroups)), *cgroups)]
    if any(b"\0" in field for field in fields):
        raise ValueError("paths cannot hold NUL characters")
    return fields


def spawn(arguments: list[bytes], env: dict[str, str], report: int) -> int:
    """Start the native command executor (:func:`spec`'s ``arguments``, the executor's environment
    ``env``); its pid. What fails before the executor runs it writes to ``report``, which it inherits."""
    argv = [b"mesos-executor", VERSION, str(report).encode(), *arguments]
    # Duplicated onto itself: the descriptor is inherited (close-on-exec cleared), it alone.
    return os.posix_spawn(PROGRAM, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, report, report)])


# -- the library, for tests -----------------------------------------------------------------------------


def library() -> ctypes.CDLL:
    """The JSON and RecordIO code of the program, loaded (once) with ctypes."""
    if not _loaded:
        [path] = glob.glob(os.path.join(_LIB, "codec*.so"))
        lib = ctypes.CDLL(path)
        lib.mesostw_native_version.restype = ctypes.c_char_p
        assert lib.mesostw_native_version() == VERSION, path
        lib.mesostw_json_reencode.restype = ctypes.c_long
        lib.mesostw_json_reencode.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
        lib.mesostw_records.restype = ctypes.c_long
        lib.mesostw_records.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                                        ctypes.POINTER(ctypes.c_size_t))
        _loaded.append(lib)
    return _loaded[0]


def reencode(text: bytes) -> bytes | None:
    """``text`` parsed and written again by the program's JSON code; None when it is malformed."""
    size = len(text) * 6 + 64
    out = ctypes.create_string_buffer(size)
    n = library().mesostw_json_reencode(text, len(text), out, size)
    if n == -1:
        return None
    if n < 0:
        raise MemoryError(n)
    return out.raw[:n]


def records(stream: bytes) -> tuple[list[bytes], int] | None:
    """The records of a RecordIO ``stream`` as the program reads them (each re-encoded) and how many
    bytes wait for the rest of a record; None when the stream is malformed."""
    size = len(stream) * 6 + 64
    out = ctypes.create_string_buffer(size)
    rest = ctypes.c_size_t(0)
    n = library().mesostw_records(stream, len(stream), out, size, ctypes.byref(rest))
    if n == -1:
        return None
    if n < 0:
        raise MemoryError(n)
    return (out.raw.split(b"\n")[:n] if n else []), rest.value
