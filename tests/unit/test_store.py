"""The memory and file stores: the shared behaviour suite, and what is particular to files on disk."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Any

from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from mesostw.store import Delete, Put, StoreError, StoreFenced, records
from mesostw.store.disk import Disk
from mesostw.store.factory import open_store
from mesostw.store.files import FileStateStore
from mesostw.store.memory import MemoryStateStore
from mesostw.store.tree import Tree
from mesostw.store.zookeeper import ZooKeeperStateStore
from tests.helpers.store_behaviour import StoreBehaviour


class TreeTests(unittest.TestCase):
    def test_children_skip_subtrees_and_keep_siblings(self) -> None:
        """Children are found past a child's subtree, including siblings sorting inside it ('a-b', 'a.c')."""
        tree = Tree()
        tree.apply([Put(p, b"") for p in ("a", "a-b", "a.c", "a/x", "a/y/z", "a0", "b/c")])
        self.assertEqual(tree.children(""), ["a", "a-b", "a.c", "a0", "b"])
        self.assertEqual(tree.children("a"), ["x", "y"])
        self.assertEqual(tree.under("a"), ["a/x", "a/y/z"])
        self.assertTrue(tree.exists("b") and tree.exists("a/y") and not tree.exists("c"))

    def test_delete_subtree_only(self) -> None:
        """Deleting a path removes it and its subtree, not siblings sharing its prefix."""
        tree = Tree([(p, b"") for p in ("a", "a-b", "a/x", "a/y/z", "ab")])
        tree.apply([Delete("a")])
        self.assertEqual([p for p, _ in tree.items()], ["a-b", "ab"])

    def test_values_of_every_kind_read_back_as_put(self) -> None:
        """Short, long, JSON, binary and incompressible values (some kept deflated) read back byte for byte, by
        get, items, as_dict and in a copy; equal trees compare equal whatever way they were filled."""
        agent = (b'{"hostname":"agent-1.example","port":5051,"resources":[{"name":"cpus","type":"SCALAR",'
                 b'"scalar":{"value":32.0},"role":"*"}],"attributes":[],"checkpoint":true,"id":{"value":"m-S1"}}')
        values = {"short": b"{}", "empty": b"", "agent": agent, "twice": agent * 2, "noise": os.urandom(4096),
                  "zeros": bytes(100_000), "edge": b"x" * 128, "nested/deep/value": agent.replace(b"cpus", b"gpus")}
        tree = Tree(values.items())
        other = Tree()
        other.apply([Put(path, value) for path, value in reversed(values.items())])
        for each in (tree, other, tree.copy()):
            for path, value in values.items():
                self.assertEqual(each.get(path), value)
            self.assertEqual(each.as_dict(), values)
            self.assertEqual(dict(each.items()), values)
        self.assertEqual(tree, other)
        self.assertEqual(tree, tree.copy())
        other.set("agent", agent.replace(b"agent-1", b"agent-2"))
        self.assertNotEqual(tree, other)
        other.set("agent", agent)
        self.assertEqual(tree, other)


class MemoryStoreTests(StoreBehaviour, unittest.TestCase):
    def make_store(self) -> defer.Deferred:
        self.claimed = True
        self.store = MemoryStateStore(fence=lambda: self.claimed)
        return defer.succeed(self.store)

    def reopen(self) -> defer.Deferred:
        return defer.succeed(self.store)

    def depose(self, store: Any) -> defer.Deferred:
        self.claimed = False
        return defer.succeed(None)

    def test_writes_fire_at_once(self) -> None:
        """The memory store fires every Deferred synchronously (cores driven by a Clock rely on it)."""
        store = MemoryStateStore()
        self.successResultOf(store.put("a", b"1"))
        self.assertEqual(self.successResultOf(store.get("a")), b"1")


class FileStoreTestCase(unittest.TestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="mesostw-store-")
        self.addCleanup(shutil.rmtree, base, True)
        self.directory = os.path.join(base, "state")
        self.stores: list[FileStateStore] = []

    def open_store(self, **kwargs: Any) -> FileStateStore:
        store = FileStateStore(self.directory, reactor, **kwargs)
        self.stores.append(store)
        self.addCleanup(store.close)
        return store

    def files(self) -> list[str]:
        return sorted(os.listdir(self.directory))


class FileStoreBehaviourTests(StoreBehaviour, FileStoreTestCase):
    def make_store(self) -> defer.Deferred:
        return self.open_store().open()

    @defer.inlineCallbacks
    def reopen(self) -> Any:
        # Another opener can only have the directory once the current one released it.
        for store in self.stores:
            yield store.close()
        store = yield self.open_store().open()
        return store

    def depose(self, store: Any) -> defer.Deferred:
        return store.close()


class FileStoreTests(FileStoreTestCase):
    @defer.inlineCallbacks
    def test_layout(self) -> Any:
        """An opened store holds a lock file with its pid and an empty journal; nothing else."""
        yield self.open_store().open()
        self.assertEqual(self.files(), ["journal.0", "lock"])
        with open(os.path.join(self.directory, "lock")) as f:
            self.assertEqual(f.read().strip(), str(os.getpid()))

    @defer.inlineCallbacks
    def test_calls_before_open_open_the_store(self) -> Any:
        """Reads and commits made before open() open the store first; reads see what it recovered."""
        store = self.open_store()
        yield store.put("a", b"1")
        yield store.close()
        store = self.open_store()
        read, written = store.get("a"), store.put("b", b"2")
        self.assertEqual((yield read), b"1")
        yield written
        self.assertEqual((yield store.children("")), ["a", "b"])

    @defer.inlineCallbacks
    def test_second_opener_is_refused(self) -> Any:
        """While one store has the directory, another opener fails with StoreError naming the holder's pid."""
        yield self.open_store().open()
        second = FileStateStore(self.directory, reactor)
        error = yield self.assertFailure(second.open(), StoreError)
        self.assertIn(f"pid {os.getpid()}", str(error))
        self.assertIn(self.directory, str(error))
        queued = yield self.assertFailure(second.put("a", b"1"), StoreError)
        self.assertIn("in use by another process", str(queued))

    @defer.inlineCallbacks
    def test_another_process_holding_the_directory(self) -> Any:
        """A directory locked by another process is refused with that process's pid, and free once it exits."""
        script = ("import sys\nfrom mesostw.store.disk import Disk\nDisk(sys.argv[1]).open()\n"
                  "print('open', flush=True)\nsys.stdin.read()\n")
        child = subprocess.Popen([sys.executable, "-c", script, self.directory], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: child.poll() is None and child.kill())
        self.assertEqual(child.stdout.readline().strip(), "open")  # type: ignore[union-attr]
        error = yield self.assertFailure(FileStateStore(self.directory, reactor).open(), StoreError)
        self.assertIn(f"pid {child.pid}", str(error))
        child.stdin.close()  # type: ignore[union-attr]
        child.wait(10)
        store = yield self.open_store().open()
        self.assertIsNone((yield store.get("a")))

    @defer.inlineCallbacks
    def test_closed_store_is_fenced(self) -> Any:
        """close() finishes the writes already made, then writes fail with StoreFenced."""
        store = self.open_store()
        written = store.put("a", b"1")
        closed = store.close()
        yield written
        yield closed
        yield self.assertFailure(store.put("b", b"1"), StoreFenced)
        yield self.assertFailure(store.open(), StoreFenced)

    @defer.inlineCallbacks
    def test_torn_journal_tail_is_dropped(self) -> Any:
        """A record cut short or with a wrong checksum at the journal's end is dropped; appends follow."""
        store = yield self.open_store().open()
        yield store.put("a", b"1")
        yield store.put("b", b"2")
        yield store.close()
        journal = os.path.join(self.directory, "journal.0")
        whole = os.path.getsize(journal)
        torn = records.record(records.encode([Put("c", b"3")]))
        for tail in (torn[:-1], torn[:3], torn[:-1] + b"X"):
            with open(journal, "ab") as f:
                f.write(tail)
            store = yield self.open_store().open()
            self.assertEqual(os.path.getsize(journal), whole)
            self.assertEqual(store.tree.as_dict(), {"a": b"1", "b": b"2"})
            yield store.close()
        store = yield self.open_store().open()
        yield store.put("d", b"4")
        yield store.close()
        again = yield self.open_store().open()
        self.assertEqual(again.tree.as_dict(), {"a": b"1", "b": b"2", "d": b"4"})

    @defer.inlineCallbacks
    def test_compaction_and_reopen(self) -> Any:
        """Once the journal outgrows the snapshot it is folded into a new snapshot; reopening finds it all."""
        store = yield self.open_store(compact_bytes=200).open()
        for index in range(30):
            yield store.put(f"k/{index % 10}", b"v%d" % index)
        yield store.delete("k/0")
        self.assertGreater(store.disk.generation, 1)
        self.assertEqual(self.files(), sorted(["lock", "snapshot", f"journal.{store.disk.generation}"]))
        self.assertLessEqual(store.journal_size, max(store.snapshot_size, 200))
        expected = {f"k/{i}": b"v%d" % (20 + i) for i in range(1, 10)}
        self.assertEqual(store.tree.as_dict(), expected)
        yield store.close()
        again = yield self.open_store().open()
        self.assertEqual(again.tree.as_dict(), expected)

    @defer.inlineCallbacks
    def test_half_written_snapshot_is_ignored(self) -> Any:
        """A snapshot.tmp left by a crash during compaction is ignored and removed; so is the next journal."""
        store = yield self.open_store().open()
        yield store.commit([Put("a", b"1"), Put("b", b"2")])
        yield store.close()
        with open(os.path.join(self.directory, "snapshot.tmp"), "wb") as f:
            f.write(records.snapshot(1, [("a", b"new")])[:-3])
        open(os.path.join(self.directory, "journal.1"), "wb").close()
        again = yield self.open_store().open()
        self.assertEqual(again.tree.as_dict(), {"a": b"1", "b": b"2"})
        self.assertEqual(self.files(), ["journal.0", "lock"])

    @defer.inlineCallbacks
    def test_stale_journal_after_compaction_is_ignored(self) -> Any:
        """A crash after the new snapshot's rename leaves the old journal: it is not replayed again."""
        store = yield self.open_store(compact_bytes=1).open()
        yield store.put("a", b"1")  # compacts at once: snapshot of generation 1
        yield store.close()
        with open(os.path.join(self.directory, "journal.0"), "wb") as f:
            f.write(records.record(records.encode([Delete("a")])))
        again = yield self.open_store().open()
        self.assertEqual(again.tree.as_dict(), {"a": b"1"})
        self.assertNotIn("journal.0", self.files())

    @defer.inlineCallbacks
    def test_corrupt_snapshot_refuses_to_open(self) -> Any:
        """A snapshot that does not read back whole is an error naming it, never an empty store."""
        store = yield self.open_store(compact_bytes=1).open()
        yield store.put("a", b"1")
        yield store.close()
        path = os.path.join(self.directory, "snapshot")
        with open(path, "r+b") as f:
            f.seek(-1, os.SEEK_END)
            f.write(b"X")
        error = yield self.assertFailure(FileStateStore(self.directory, reactor).open(), StoreError)
        self.assertIn(path, str(error))

    @defer.inlineCallbacks
    def test_failed_append_leaves_durable_state(self) -> Any:
        """A write failing half-way (ENOSPC) fails its commits; memory and disk stay as they were."""
        store = yield self.open_store().open()
        yield store.put("a", b"1")
        real = store.disk.write

        def full(fd: int, data: bytes) -> None:
            real(fd, data[:len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.patch(store.disk, "write", full)
        error = yield self.assertFailure(store.commit([Put("b", b"2"), Delete("a")]), StoreError)
        self.assertIn("No space left on device", str(error))
        self.assertEqual(store.tree.as_dict(), {"a": b"1"})
        self.patch(store.disk, "write", real)
        yield store.put("c", b"3")
        yield store.close()
        again = yield self.open_store().open()
        self.assertEqual(again.tree.as_dict(), {"a": b"1", "c": b"3"})

    @defer.inlineCallbacks
    def test_failed_fsync_fails_the_batch(self) -> Any:
        """An fsync failing (EIO) fails the batch and cuts its records off the journal."""
        store = yield self.open_store().open()
        real = store.disk.fsync
        calls: list[int] = []

        def failing(fd: int, data_only: bool = False) -> None:
            calls.append(fd)
            if len(calls) == 1:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(fd, data_only)

        self.patch(store.disk, "fsync", failing)
        yield self.assertFailure(store.put("a", b"1"), StoreError)
        self.assertEqual(os.path.getsize(os.path.join(self.directory, "journal.0")), 0)
        yield store.put("b", b"2")
        self.assertEqual(store.tree.as_dict(), {"b": b"2"})

    @defer.inlineCallbacks
    def test_failed_compaction_leaves_durable_state(self) -> Any:
        """A compaction failing to write its snapshot fails the batch and leaves the old files in use."""
        store = yield self.open_store(compact_bytes=100).open()
        yield store.put("a", b"1")
        real = store.disk.write
        self.patch(store.disk, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        yield self.assertFailure(store.put("big", b"x" * 200), StoreError)
        self.assertEqual(self.files(), ["journal.0", "lock"])
        self.assertEqual(store.tree.as_dict(), {"a": b"1"})
        self.patch(store.disk, "write", real)
        yield store.put("big", b"x" * 200)
        yield store.close()
        again = yield self.open_store().open()
        self.assertEqual(again.tree.as_dict(), {"a": b"1", "big": b"x" * 200})

    @defer.inlineCallbacks
    def test_group_commit(self) -> Any:
        """Commits made while a write is in flight share the next write: one fsync for the lot."""
        store = yield self.open_store().open()
        gate = threading.Event()
        appends: list[int] = []
        real = store.disk.append

        def slow(payload: bytes) -> int:
            appends.append(len(records.read_records(payload)[0]))
            if len(appends) == 1:
                gate.wait(10)
            return real(payload)

        self.patch(store.disk, "append", slow)
        commits = [store.put(f"k{i}", b"v") for i in range(10)]
        reactor.callLater(0, gate.set)
        yield defer.gatherResults(commits)
        self.assertEqual(appends, [1, 9])

    @defer.inlineCallbacks
    def test_synchronous_without_reactor(self) -> Any:
        """Without a reactor the disk work runs in the caller's thread and Deferreds fire at once."""
        store = FileStateStore(self.directory)
        self.addCleanup(store.close)
        self.successResultOf(store.put("a", b"1"))
        self.assertEqual(self.successResultOf(store.get("a")), b"1")
        yield store.close()

    def test_disk_refuses_writes_when_not_open(self) -> None:
        """The disk layer refuses appends before it is opened (no file is created)."""
        self.assertRaises(StoreError, Disk(self.directory).append, b"x")
        self.assertFalse(os.path.exists(self.directory))


class OpenStoreTests(unittest.TestCase):
    def test_zookeeper_when_given(self) -> None:
        """With a ZooKeeper client the store is in ZooKeeper under the path, fenced as asked."""
        fence = lambda: "/mesos/json.info_0000000001"  # noqa: E731
        store = open_store(reactor, directory="/unused", zk=object(), zk_path="/mesos/registry", fence=fence)
        self.assertIsInstance(store, ZooKeeperStateStore)
        self.assertEqual((store.root, store.fence), ("/mesos/registry", fence))
        self.assertRaises(ValueError, open_store, reactor, zk=object())

    def test_files_under_a_directory(self) -> None:
        """Without ZooKeeper but with a directory the store is in files there (nothing is opened yet)."""
        directory = os.path.join(self.mktemp(), "registry")
        store = open_store(reactor, directory=directory)
        self.assertIsInstance(store, FileStateStore)
        self.assertEqual(store.directory, os.path.abspath(directory))
        self.assertFalse(os.path.exists(directory))

    def test_memory_with_a_warning(self) -> None:
        """With neither, the store is in memory and a warning says what will be lost."""
        warnings: list[str] = []
        observer = lambda event: warnings.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        store = open_store(reactor, what="cron state")
        self.assertIsInstance(store, MemoryStateStore)
        self.assertTrue(any("the cron state is kept in memory" in line for line in warnings), warnings)
