"""The agent's sandbox file API: Mesos's ``/files/browse``, ``/files/read``, ``/files/download``, ``/files/debug``.

Clients pass absolute sandbox paths, as the agent's state shows them in ``executor.directory`` plus a
suffix. Each one is resolved with :func:`os.path.realpath` and must land on the root (the agent's
``<work_dir>/slaves``) or below it; otherwise the request is refused before anything is opened, so a
refusal says nothing about what exists outside. The file is then opened again one component at a
time from the root with ``O_NOFOLLOW``, so a symlink swapped in after the check (a task owns its
sandbox) cannot lead outside either. Error messages never carry a resolved path.
"""

from __future__ import annotations

import errno
import grp
import mimetypes
import os
import posixpath
import pwd
import re
import stat
from functools import lru_cache
from typing import Any, BinaryIO, Callable
from urllib.parse import quote

from twisted.internet import abstract, interfaces
from twisted.web import server
from zope.interface import implementer

from mesostw.http.router import HTTPError, Router, query

MAX_PATH = 4096
MAX_READ = 16 * 4096  # Mesos caps one read at 16 pages
_NUMBER = re.compile(r"-?[0-9]{1,19}")
_TOKEN = re.compile(r"[A-Za-z0-9!#$&+.^_`|~-]+")
_NOT_FOUND = (errno.ENOENT, errno.ENOTDIR)
_FORBIDDEN = (errno.ELOOP, errno.EACCES, errno.EPERM)


#: ``check(request, real_path)``: raises HTTPError (403) when the request may not read ``real_path``.
AccessCheck = Callable[[server.Request, str], None]


class SandboxFiles:
    """Serves the files below ``root`` (the agent's ``<work_dir>/slaves``) and nothing else; with
    ``access``, only those it allows to each request (see :mod:`mesostw.agent.access`)."""

    def __init__(self, root: str, access: AccessCheck | None = None) -> None:
        self.root = os.path.abspath(root)
        self.access = access

    def install(self, router: Router) -> None:
        """Register ``/files/{browse,read,download,debug}`` and their ``.json`` aliases on ``router``."""
        for name, handler in (("browse", self.browse), ("read", self.read),
                              ("download", self.download), ("debug", self.debug)):
            router.route(f"/files/{name}", handler)
            router.route(f"/files/{name}.json", handler)

    def browse(self, request: server.Request) -> list[dict[str, Any]]:
        """A directory's entries sorted by path (or the one entry of a file)."""
        path = query(request).get("path")
        fd, st, real = self._open(path, request)
        assert path is not None
        base = path.rstrip("/") or "/"
        try:
            if not stat.S_ISDIR(st.st_mode):
                return [_info(base, st)]
            listing = []
            for name in os.listdir(fd):
                try:
                    listing.append(_info(posixpath.join(base, name), self._entry_stat(fd, real, name)))
                except OSError:
                    continue  # removed while we listed
        finally:
            os.close(fd)
        return sorted(listing, key=lambda entry: entry["path"])

    def read(self, request: server.Request) -> dict[str, Any]:
        """Up to 64 KiB of a file from ``offset``; without an offset (or -1), just the file's size."""
        params = query(request)
        offset = _number(params, "offset")
        length = _number(params, "length")
        if offset is not None and offset < -1:
            raise HTTPError(400, "Negative offset provided")
        if length is not None and length < -1:
            raise HTTPError(400, "Negative length provided")
        fd, st, _ = self._open(params.get("path"), request)
        try:
            _require_regular(st, "read")
            size = st.st_size
            if offset is None or offset == -1 or offset >= size:
                return {"data": "", "offset": size}
            if length is None or length == -1:
                length = size - offset
            data = os.pread(fd, min(length, MAX_READ), offset)
        finally:
            os.close(fd)
        return {"data": data.decode("utf-8", "replace"), "offset": offset}

    def download(self, request: server.Request) -> Any:
        """The raw file, streamed; its length is the file's size when the download began."""
        fd, st, real = self._open(query(request).get("path"), request)
        try:
            _require_regular(st, "download")
            file = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        name = os.path.basename(real)
        request.setResponseCode(200)
        request.setHeader("Content-Type", mimetypes.guess_type(name)[0] or "application/octet-stream")
        request.setHeader("Content-Disposition", _disposition(name))
        request.setHeader("Content-Length", str(st.st_size))
        if request.method == b"HEAD":
            file.close()
            request.finish()
        else:
            _SizedFileProducer(request, file, st.st_size).start()
        return server.NOT_DONE_YET

    def debug(self, request: server.Request) -> dict[str, str]:
        """The virtual path served and the real directory behind it."""
        if self.access is not None:
            self.access(request, os.path.realpath(self.root))
        return {self.root: os.path.realpath(self.root)}

    def resolve(self, path: str | None) -> str:
        """The real path of a client's ``path``; HTTPError 400 when malformed, 403 when outside the root."""
        if not path:
            raise HTTPError(400, "Expecting 'path=value' in query")
        if "\x00" in path:
            raise HTTPError(400, "Path contains a NUL byte")
        if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
            raise HTTPError(400, f"Path is longer than {MAX_PATH} bytes")
        if not path.startswith("/"):
            raise HTTPError(400, "Path must be absolute")
        if ".." in path.split("/"):
            raise HTTPError(403, "Path may not contain '..'")
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError):
            raise HTTPError(400, "Path cannot be resolved") from None
        if not _below(real, os.path.realpath(self.root)):
            raise HTTPError(403, "Path is outside the agent's sandboxes")
        return real

    def _open(self, path: str | None, request: server.Request) -> tuple[int, os.stat_result, str]:
        """Resolve ``path``, check access, and open it without following any symlink; the caller closes the fd."""
        real = self.resolve(path)
        if self.access is not None:
            self.access(request, real)
        try:
            fd = _open_below(os.path.realpath(self.root), real)
        except OSError as e:
            if e.errno in _NOT_FOUND:
                raise HTTPError(404, "No such file or directory") from None
            if e.errno in _FORBIDDEN:
                raise HTTPError(403, "Access denied") from None
            if e.errno == errno.ENAMETOOLONG:
                raise HTTPError(400, "File name too long") from None
            raise
        try:
            return fd, os.fstat(fd), real
        except BaseException:
            os.close(fd)
            raise

    # -- for the operator API's LIST_FILES and READ_FILE (mesostw.agent.operator_api) ---------------

    def owns(self, path: str) -> bool:
        """Every path is this source's to judge: one outside the sandboxes is refused by :meth:`resolve`."""
        return True

    def stat_entries(self, path: str, request: Any) -> list[tuple[str, os.stat_result]]:
        """(client path, metadata) of a directory's entries sorted by path, or of one file; the same
        confinement, access check and errors as ``/files/browse``."""
        fd, st, real = self._open(path, request)
        base = path.rstrip("/") or "/"
        try:
            if not stat.S_ISDIR(st.st_mode):
                return [(base, st)]
            listing = []
            for name in os.listdir(fd):
                try:
                    listing.append((posixpath.join(base, name), self._entry_stat(fd, real, name)))
                except OSError:
                    continue  # removed while we listed
        finally:
            os.close(fd)
        return sorted(listing, key=lambda entry: entry[0])

    def read_range(self, path: str, offset: int, length: int | None, request: Any) -> tuple[int, bytes]:
        """(file size, up to 64 KiB from ``offset``) of a sandbox file; the confinement and access check
        of ``/files/read``."""
        fd, st, _ = self._open(path, request)
        try:
            _require_regular(st, "read")
            size = st.st_size
            if offset >= size:
                return size, b""
            wanted = size - offset if length is None else length
            return size, os.pread(fd, min(wanted, MAX_READ), offset)
        finally:
            os.close(fd)

    def _entry_stat(self, dir_fd: int, real_dir: str, name: str) -> os.stat_result:
        """An entry's metadata; a symlink is followed only when its target is inside the root."""
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(os.path.join(real_dir, name))
            if _below(target, os.path.realpath(self.root)):
                try:
                    return os.stat(target, follow_symlinks=False)
                except OSError:
                    pass
        return st


@implementer(interfaces.IPullProducer)
class _SizedFileProducer:
    """Writes exactly ``size`` bytes of a file, so a log that grows meanwhile still matches Content-Length."""

    bufferSize = abstract.FileDescriptor.bufferSize

    def __init__(self, request: server.Request, file: BinaryIO, size: int) -> None:
        self.request: server.Request | None = request
        self.file = file
        self.remaining = size

    def start(self) -> None:
        assert self.request is not None
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        request = self.request
        if request is None:
            return
        data = self.file.read(min(self.bufferSize, self.remaining)) if self.remaining > 0 else b""
        if data:
            self.remaining -= len(data)
            request.write(data)  # may re-enter resumeProducing
            return
        channel = getattr(request, "channel", None)
        request.unregisterProducer()
        request.finish()
        transport = getattr(channel, "transport", None)
        if self.remaining > 0 and channel is not None and transport is not None and not transport.disconnecting:
            channel.loseConnection()  # the file shrank: the body is short, the connection cannot be reused
        self.stopProducing()

    def stopProducing(self) -> None:
        self.file.close()
        self.request = None


def _open_below(root: str, real: str) -> int:
    """Open ``real`` (a path below ``root`` with no symlinks) one component at a time with O_NOFOLLOW."""
    relative = os.path.relpath(real, root)
    parts = [] if relative == "." else relative.split(os.sep)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused afterwards).
            flags = os.O_NONBLOCK | os.O_NOCTTY if last else os.O_DIRECTORY
            try:
                child = os.open(part, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | flags, dir_fd=fd)
            except NotADirectoryError:
                if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, "Refusing to follow a symlink") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _below(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _require_regular(st: os.stat_result, verb: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise HTTPError(400, f"Cannot {verb} a directory")
    if not stat.S_ISREG(st.st_mode):
        raise HTTPError(400, f"Cannot {verb} a special file")


def _number(params: dict[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not _NUMBER.fullmatch(value):
        raise HTTPError(400, f"Failed to parse {name}: {value[:40]!r} is not an integer")
    return int(value)


def _info(path: str, st: os.stat_result) -> dict[str, Any]:
    return {"path": path, "nlink": st.st_nlink, "size": st.st_size, "mtime": int(st.st_mtime),
            "mode": stat.filemode(st.st_mode), "uid": user_name(st.st_uid), "gid": group_name(st.st_gid)}


@lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """The name of user ``uid`` (its number when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=256)
def group_name(gid: int) -> str:
    """The name of group ``gid`` (its number when it has none)."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _disposition(name: str) -> str:
    if _TOKEN.fullmatch(name):
        return f"attachment; filename={name}"
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
