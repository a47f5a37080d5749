"""``LIST_FILES`` and ``READ_FILE`` over files a daemon attaches under virtual paths (Mesos's Files
process): ``/master/log`` and ``/slave/log`` for the daemon's log (``--external_log_file``).

:class:`FileSource` is what the two calls read from: :class:`AttachedFiles` here, an agent's sandboxes
(:mod:`mesostw.agent.files`), or both in turn (:class:`FileSources`). Answers are v1 ``FileInfo``
messages and ``(size, data)``; refusals are HTTPErrors (400 bad input, 403 not allowed, 404 unknown).
"""

from __future__ import annotations

import os
import stat
from typing import Any, Protocol

from mesostw.agent.files import group_name, user_name
from mesostw.http.router import HTTPError
from mesostw.operator.calls import CallContext
from mesostw.operator.v1 import time_info

#: One read returns at most this much, as Mesos caps reads at 16 pages.
MAX_READ = 16 * 4096


class FileSource(Protocol):
    """Where LIST_FILES and READ_FILE look; ``owns(path)`` says whether a path is this source's. The
    call's context says who asks (its approvers, and the HTTP request for checks made on it)."""

    def owns(self, path: str) -> bool: ...

    def list_files(self, path: str, context: CallContext) -> list[dict[str, Any]]: ...

    def read_file(self, path: str, offset: int, length: int | None, context: CallContext) -> tuple[int, bytes]: ...


def file_info(path: str, st: os.stat_result) -> dict[str, Any]:
    """A v1 ``FileInfo``."""
    return {"path": path, "nlink": st.st_nlink, "size": st.st_size, "mtime": time_info(st.st_mtime),
            "mode": st.st_mode, "uid": user_name(st.st_uid),
            "gid": group_name(st.st_gid)}


def read_range(fd: int, size: int, offset: int, length: int | None) -> bytes:
    """Up to :data:`MAX_READ` bytes of an open file from ``offset`` (nothing at or past its end)."""
    if offset >= size:
        return b""
    wanted = size - offset if length is None else length
    return os.pread(fd, min(wanted, MAX_READ), offset)


class AttachedFiles:
    """Single files served under virtual paths, each behind an ACL action (``access_mesos_logs``)."""

    def __init__(self) -> None:
        self._attached: dict[str, tuple[str, str]] = {}

    def attach(self, virtual: str, real: str, acl: str = "access_mesos_logs") -> None:
        self._attached[virtual.rstrip("/") or "/"] = (real, acl)

    def owns(self, path: str) -> bool:
        return path.rstrip("/") in self._attached

    def _open(self, path: str, context: CallContext) -> tuple[int, os.stat_result, str]:
        attached = self._attached.get(path.rstrip("/"))
        if attached is None:
            raise HTTPError(404, f"No file or directory is attached at {path}")
        real, acl = attached
        if not context.approvers.allowed(acl):
            raise HTTPError(403, f"Principal {context.principal or '(none)'} may not read {path} ({acl})")
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise HTTPError(404, f"{path} does not exist (yet)") from None
        except OSError as exc:
            raise HTTPError(403, f"{path} cannot be opened: {exc.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise HTTPError(403, f"{path} is not a regular file")
        return fd, st, path.rstrip("/")

    def list_files(self, path: str, context: CallContext) -> list[dict[str, Any]]:
        fd, st, virtual = self._open(path, context)
        os.close(fd)
        return [file_info(virtual, st)]

    def read_file(self, path: str, offset: int, length: int | None, context: CallContext) -> tuple[int, bytes]:
        fd, st, _ = self._open(path, context)
        try:
            return st.st_size, read_range(fd, st.st_size, offset, length)
        finally:
            os.close(fd)


class FileSources:
    """Several sources: a path goes to the first that owns it; a path nobody owns is a 404."""

    def __init__(self, *sources: FileSource):
        self.sources = sources

    def owns(self, path: str) -> bool:
        return any(source.owns(path) for source in self.sources)

    def _source(self, path: str) -> FileSource:
        for source in self.sources:
            if source.owns(path):
                return source
        raise HTTPError(404, f"No file or directory is attached at {path}")

    def list_files(self, path: str, context: CallContext) -> list[dict[str, Any]]:
        return self._source(path).list_files(path, context)

    def read_file(self, path: str, offset: int, length: int | None, context: CallContext) -> tuple[int, bytes]:
        return self._source(path).read_file(path, offset, length, context)
