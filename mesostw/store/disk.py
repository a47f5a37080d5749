"""The blocking half of the file store: its lock, snapshot and journal in one directory.

Files in the directory:

``lock``
    held with an exclusive ``flock`` while the store is open; holds the holder's pid.
``snapshot``
    every value as of generation *G* (``records.MAGIC``, *G*, one record of Puts), replaced
    atomically (write ``snapshot.tmp``, fsync, rename, fsync the directory).
``journal.G``
    the batches committed since that snapshot, one checksummed record per commit, appended and
    fsync'd before the commit is acknowledged.

Recovery loads the snapshot and replays its journal, cutting a torn tail off (a crash in the
middle of an append: nothing in it was acknowledged). A ``snapshot.tmp`` and journals of other
generations are leftovers of an interrupted compaction and are removed. Every method here
blocks; :class:`mesostw.store.files.FileStateStore` calls them one at a time from a worker thread.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterable

import attrs

from mesostw.store import StoreError, records
from mesostw.store.records import CorruptRecord
from mesostw.store.tree import Tree

SNAPSHOT = "snapshot"
LOCK = "lock"


@attrs.define
class Recovered:
    """What :meth:`Disk.open` found."""

    tree: Tree
    generation: int
    snapshot_size: int
    journal_size: int
    #: bytes cut off the journal's end (a torn append)
    dropped: int = 0


class Disk:
    """One store directory. ``write`` and ``fsync`` are the only calls that put bytes on disk
    (tests replace them to simulate a full or failing disk)."""

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        self.generation = 0
        self.journal_size = 0
        self._lock_fd: int | None = None
        self._journal_fd: int | None = None
        #: set when a failed write could not be undone: what is on disk is no longer known
        self.broken: str | None = None

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _journal(self, generation: int) -> str:
        return self._path(f"journal.{generation}")

    # -- primitives ------------------------------------------------------------------------

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def fsync(self, fd: int, data_only: bool = False) -> None:
        # An append needs its data and the file's new size, which fdatasync also writes; not the times.
        (os.fdatasync if data_only else os.fsync)(fd)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            self.fsync(fd)
        finally:
            os.close(fd)

    # -- opening -----------------------------------------------------------------------------

    def open(self) -> Recovered:
        """Lock the directory (StoreError naming the holder when another process has it) and recover."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            self._lock()
        except OSError as exc:
            raise StoreError(f"cannot open the store {self.directory}: {exc}") from None
        try:
            return self._recover()
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        fd = os.open(self._path(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StoreError(f"the store {self.directory} is in use by another process (pid {holder})") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _recover(self) -> Recovered:
        try:
            os.unlink(self._path(SNAPSHOT + ".tmp"))
        except FileNotFoundError:
            pass
        tree = Tree()
        snapshot_size = 0
        try:
            with open(self._path(SNAPSHOT), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            generation = 0
        except OSError as exc:
            raise StoreError(f"cannot read the store's snapshot {self._path(SNAPSHOT)}: {exc}") from None
        else:
            try:
                generation, values = records.read_snapshot(data)
            except ValueError as exc:
                raise StoreError(f"cannot read the store's snapshot {self._path(SNAPSHOT)}: {exc}") from None
            tree = Tree(values)
            snapshot_size = len(data)
        self.generation = generation
        for name in os.listdir(self.directory):
            if name.startswith("journal.") and name != f"journal.{generation}":
                os.unlink(self._path(name))
        dropped = self._replay(tree)
        return Recovered(tree, generation, snapshot_size, self.journal_size, dropped)

    def _replay(self, tree: Tree) -> int:
        path = self._journal(self.generation)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._journal_fd = fd
        try:
            with open(path, "rb") as f:
                data = f.read()
            payloads, end = records.read_records(data)
            for payload in payloads:
                tree.apply(records.decode(payload))
        except (OSError, CorruptRecord) as exc:
            raise StoreError(f"cannot read the store's journal {path}: {exc}") from None
        if end < len(data):
            # A torn append: it was never acknowledged. Cut it off so that appends follow whole records.
            os.ftruncate(fd, end)
            self.fsync(fd)
        self._sync_directory()
        self.journal_size = end
        return len(data) - end

    # -- writing -----------------------------------------------------------------------------

    def _check(self) -> int:
        if self.broken:
            raise StoreError(self.broken)
        if self._journal_fd is None:
            raise StoreError(f"the store {self.directory} is not open")
        return self._journal_fd

    def append(self, payload: bytes) -> int:
        """Append records and fsync; on failure cut them off again. Returns the journal's size."""
        fd = self._check()
        start = self.journal_size
        try:
            self.write(fd, payload)
            self.fsync(fd, data_only=True)
        except OSError as exc:
            try:
                os.ftruncate(fd, start)
                self.fsync(fd)
            except OSError as undo:
                self.broken = (f"the store {self.directory} could not undo a failed write ({undo}); "
                               "reopen it to recover")
            raise StoreError(f"cannot write the store {self.directory}: {exc}") from None
        self.journal_size = start + len(payload)
        return self.journal_size

    def compact(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Write every value as the next generation's snapshot and start its empty journal.

        Returns the snapshot's size. Until the rename, the previous snapshot and journal are what
        a recovery finds; after it, the new snapshot alone.
        """
        self._check()
        generation = self.generation + 1
        temporary, journal = self._path(SNAPSHOT + ".tmp"), self._journal(generation)
        data = records.snapshot(generation, items)
        new_fd: int | None = None
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                self.write(fd, data)
                self.fsync(fd)
            finally:
                os.close(fd)
            new_fd = os.open(journal, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            os.replace(temporary, self._path(SNAPSHOT))
        except OSError as exc:
            for leftover in (temporary, journal):
                try:
                    os.unlink(leftover)
                except OSError:
                    pass
            if new_fd is not None:
                os.close(new_fd)
            raise StoreError(f"cannot write the store {self.directory}: {exc}") from None
        try:
            self._sync_directory()
        except OSError as exc:
            os.close(new_fd)
            self.broken = f"the store {self.directory} may not have its new snapshot ({exc}); reopen it to recover"
            raise StoreError(f"cannot write the store {self.directory}: {exc}") from None
        old_fd, old_journal = self._journal_fd, self._journal(self.generation)
        self._journal_fd, self.generation, self.journal_size = new_fd, generation, 0
        if old_fd is not None:
            os.close(old_fd)
        try:
            os.unlink(old_journal)
        except OSError:
            pass  # a stale journal is removed by the next recovery
        return len(data)

    def close(self) -> None:
        for name in ("_journal_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)  # closing the lock's descriptor releases the flock
