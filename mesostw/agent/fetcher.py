"""The fetcher: ``CommandInfo.uris`` into a sandbox before its executor starts (Mesos's ``mesos-fetcher``).

A URI is ``http(s)://``, ``file://`` or an absolute path (a relative path is taken under
``--frameworks_home``). Archives (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``,
``.tar.xz``/``.txz``, ``.zip``, ``.gz``) are extracted into the sandbox unless ``extract`` is
false; ``executable`` makes the file executable (and is never extracted); ``output_file`` names
the file in the sandbox; ``cache`` keeps the download in a cache shared by the agent's tasks,
keyed by user and URI and bounded in size (least recently used entries go first).

Fetching blocks (network, disk), so it runs in a small thread pool of its own: the agent's
other disk work (its checkpoints) never waits behind a slow download.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pwd
import shutil
import tarfile
import tempfile
import threading
import zipfile
from collections import OrderedDict
from typing import Any
from urllib import error, request
from urllib.parse import unquote, urlsplit

import attrs
from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
CHUNK = 1 << 16
#: Direct downloads (no proxies): URIs name the cluster's own artifact servers, as the CLI's requests do.
_opener = request.build_opener(request.ProxyHandler({}))


class FetchError(Exception):
    """A URI could not be fetched; the message names it and says why."""


@attrs.frozen
class URI:
    value: str
    executable: bool = False
    extract: bool = True
    cache: bool = False
    output_file: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> URI:
        if not isinstance(data, dict) or not isinstance(data.get("value"), str) or not data["value"]:
            raise FetchError(f"invalid URI {data!r}: expected an object with a 'value'")
        output = data.get("output_file")
        if output is not None and (not isinstance(output, str) or not _plain_name(output)):
            raise FetchError(f"invalid output_file {output!r} for '{data['value']}': "
                             "must be a relative path inside the sandbox")
        return cls(data["value"], bool(data.get("executable", False)), bool(data.get("extract", True)),
                   bool(data.get("cache", False)), output)


def _plain_name(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and all(parts)


class Cache:
    """Downloads kept in ``directory`` up to ``max_bytes``, least recently used evicted first (thread-safe)."""

    def __init__(self, directory: str, max_bytes: int):
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()
        os.makedirs(directory, exist_ok=True)
        for name in sorted(os.listdir(directory), key=lambda n: os.stat(os.path.join(directory, n)).st_atime):
            path = os.path.join(directory, name)
            if name.startswith("tmp") or not os.path.isfile(path):
                _remove(path)
            else:
                self._entries[name] = os.path.getsize(path)

    @staticmethod
    def key(user: str | None, uri: str) -> str:
        return hashlib.sha256(f"{user or ''}\0{uri}".encode()).hexdigest()

    @property
    def size(self) -> int:
        return sum(self._entries.values())

    def get(self, key: str) -> str | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return os.path.join(self.directory, key)

    def put(self, key: str, download: str) -> str | None:
        """Keep ``download`` (a file in this cache's directory) as ``key``; None if it is too large to keep."""
        size = os.path.getsize(download)
        with self._lock:
            if size > self.max_bytes:
                return None
            while self._entries and self.size + size > self.max_bytes:
                evicted, _ = self._entries.popitem(last=False)
                _remove(os.path.join(self.directory, evicted))
            path = os.path.join(self.directory, key)
            os.replace(download, path)
            self._entries[key] = size
            return path

    def temporary(self) -> str:
        fd, path = tempfile.mkstemp(prefix="tmp", dir=self.directory)
        os.close(fd)
        return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class Fetcher:
    """Fetches URIs into sandboxes off the reactor thread (``threads`` at a time)."""

    def __init__(self, reactor: Any, cache: Cache | None = None, frameworks_home: str | None = None,
                 timeout: float = 60.0, threads: int = 4):
        self.reactor = reactor
        self.cache = cache
        self.frameworks_home = frameworks_home
        self.timeout = timeout
        self.pool = ThreadPool(1, threads, name="fetcher")
        self._started = False

    def fetch(self, uris: Any, directory: str, user: str | None) -> defer.Deferred:
        """Fetch every URI (dicts as in CommandInfo.uris) into ``directory``; fails with FetchError."""
        if not uris:
            return defer.succeed(None)
        try:
            parsed = [URI.from_json(u) for u in uris]
        except FetchError as exc:
            return defer.fail(exc)
        if not self._started:
            self._started = True
            self.pool.start()
            self.reactor.addSystemEventTrigger("during", "shutdown", self.stop)
        return threads.deferToThreadPool(self.reactor, self.pool, fetch_all, parsed, directory, user, self.cache,
                                         self.frameworks_home, self.timeout)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.pool.stop()


def fetch_all(uris: list[URI], directory: str, user: str | None, cache: Cache | None,
              frameworks_home: str | None = None, timeout: float = 60.0) -> None:
    """Blocking: fetch each URI into ``directory``, owned by ``user``."""
    owner = _owner(user)
    for uri in uris:
        try:
            fetch_one(uri, directory, user, cache, frameworks_home, timeout, owner)
        except FetchError as exc:
            raise FetchError(f"Failed to fetch '{uri.value}': {exc}") from None
        except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise FetchError(f"Failed to fetch '{uri.value}': {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def _owner(user: str | None) -> tuple[int, int] | None:
    if not user or os.getuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def fetch_one(uri: URI, directory: str, user: str | None, cache: Cache | None, frameworks_home: str | None,
              timeout: float, owner: tuple[int, int] | None) -> str:
    source = _source(uri.value, frameworks_home)
    name = uri.output_file or os.path.basename(unquote(urlsplit(source).path).rstrip("/")) or "download"
    target = os.path.join(directory, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if uri.cache and cache is not None:
        key = Cache.key(user, source)
        cached = cache.get(key)
        if cached is None:
            download = cache.temporary()
            try:
                _download(source, download, timeout)
            except BaseException:
                _remove(download)
                raise
            cached = cache.put(key, download)
            if cached is None:  # larger than the whole cache: used this once
                shutil.move(download, target)
        if cached is not None:
            shutil.copyfile(cached, target)
    else:
        _download(source, target, timeout)
    made = [target]
    if uri.executable:
        os.chmod(target, 0o755)
    elif uri.extract and _archive(name):
        made = _extract(target, directory)
    if owner is not None:
        for path in made:
            _chown_tree(path, owner)
    return target


def _source(value: str, frameworks_home: str | None) -> str:
    scheme = urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        return value
    if scheme == "file":
        return unquote(urlsplit(value).path)
    if scheme:
        raise FetchError(f"unsupported scheme '{scheme}' (http, https, file or a path)")
    if os.path.isabs(value):
        return value
    if not frameworks_home:
        raise FetchError("a relative path needs --frameworks_home")
    return os.path.join(frameworks_home, value)


def _download(source: str, target: str, timeout: float) -> None:
    if not source.startswith(("http://", "https://")):
        if not os.path.isfile(source):
            raise FetchError(f"no such file: {source}")
        shutil.copyfile(source, target)
        return
    try:
        with _opener.open(source, timeout=timeout) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except error.URLError as exc:
        raise FetchError(f"cannot reach it: {_describe(exc.reason) if isinstance(exc.reason, OSError) else exc.reason}"
                         ) from None
    except TimeoutError:
        raise FetchError(f"timed out after {timeout:g}s") from None


def _archive(name: str) -> bool:
    return name.endswith(TAR_SUFFIXES + (".zip", ".gz"))


def _extract(archive: str, directory: str) -> list[str]:
    """Extract into ``directory``; returns the top-level paths made. Nothing may land outside it."""
    before = set(os.listdir(directory))
    if archive.endswith(TAR_SUFFIXES):
        with tarfile.open(archive) as tar:
            tar.extractall(directory, filter="data")
    elif archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            root = os.path.realpath(directory)
            for member in bundle.namelist():
                path = os.path.realpath(os.path.join(directory, member))
                if path != root and not path.startswith(root + os.sep):
                    raise FetchError(f"the archive's member {member!r} would land outside the sandbox")
            bundle.extractall(directory)
    else:  # .gz of one file
        with gzip.open(archive) as packed, open(archive[:-3], "wb") as out:
            shutil.copyfileobj(packed, out, CHUNK)
    return [os.path.join(directory, n) for n in sorted(set(os.listdir(directory)) - before)] + [archive]


def _chown_tree(path: str, owner: tuple[int, int]) -> None:
    uid, gid = owner
    os.chown(path, uid, gid, follow_symlinks=False)
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
