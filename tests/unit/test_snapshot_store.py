"""The interim framework store: the whole tree in memory, saved whole (file or fenced znode) before a
write is acknowledged."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mesostw.interfaces import IStateStore
from mesostw.scheduler.stores import SnapshotStore, file_snapshot
from mesostw.store import Delete, Put, StoreError, StoreFenced


class Saves:
    """load/save functions whose outcome the test decides."""

    def __init__(self, initial: bytes | None = None):
        self.initial = initial
        self.loads = 0
        self.saved: list[tuple[bytes, str | None]] = []
        self.pending: list[defer.Deferred] = []
        self.hold = False
        self.fail_load = False

    def load(self) -> Any:
        self.loads += 1
        if self.fail_load:
            raise StoreError("cannot read")
        return self.initial

    def save(self, snapshot: bytes, claim: str | None) -> Any:
        self.saved.append((snapshot, claim))
        if self.hold:
            d: defer.Deferred = defer.Deferred()
            self.pending.append(d)
            return d
        return None


class SnapshotStoreTests(unittest.TestCase):
    def test_tree_operations(self) -> None:
        """put, get, children, delete and commit behave as the memory store's, through a scope too."""
        saves = Saves()
        store = SnapshotStore(saves.load, saves.save)
        verifyObject(IStateStore, store)
        self.successResultOf(store.commit([Put("jobs/a", b"1"), Put("jobs/b", b"2"), Put("id", b"F")]))
        self.assertEqual(self.successResultOf(store.children("jobs")), ["a", "b"])
        scoped = store.scoped("jobs")
        verifyObject(IStateStore, scoped)
        self.assertEqual(self.successResultOf(scoped.get("b")), b"2")
        self.successResultOf(store.commit([Delete("jobs"), Put("jobs/c", b"3")]))
        self.assertEqual(self.successResultOf(store.children("jobs")), ["c"])
        self.successResultOf(store.delete("id"))
        self.assertIsNone(self.successResultOf(store.get("id")))
        self.assertEqual(saves.loads, 1)

    def test_a_write_is_acknowledged_only_once_saved_and_writes_go_one_at_a_time(self) -> None:
        """A put fires after its save; a second write waits for the first save and builds on it."""
        saves = Saves()
        saves.hold = True
        store = SnapshotStore(saves.load, saves.save)
        first = store.put("a", b"1")
        second = store.put("b", b"2")
        self.assertNoResult(first)
        self.assertEqual(len(saves.saved), 1)
        self.assertIsNone(self.successResultOf(store.get("a")), "not visible before it is durable")
        saves.pending[0].callback(None)
        self.successResultOf(first)
        self.assertNoResult(second)
        saves.pending[1].callback(None)
        self.successResultOf(second)
        self.assertIn(b'"a"', saves.saved[1][0])
        self.assertIn(b'"b"', saves.saved[1][0])

    def test_a_failed_save_changes_nothing(self) -> None:
        """A save that fails fails the write and leaves the tree as it was."""
        saves = Saves()
        saves.hold = True
        store = SnapshotStore(saves.load, saves.save)
        d = store.put("a", b"1")
        saves.pending[0].errback(StoreError("disk full"))
        self.failureResultOf(d, StoreError)
        self.assertIsNone(self.successResultOf(store.get("a")))

    def test_a_writer_without_its_claim_is_fenced(self) -> None:
        """With no claim (its election node is gone) a write fails with StoreFenced and saves nothing."""
        saves = Saves()
        claim: dict[str, str | None] = {"node": "/leader/member_1"}
        store = SnapshotStore(saves.load, saves.save, fence=lambda: claim["node"])
        self.successResultOf(store.put("a", b"1"))
        self.assertEqual(saves.saved[0][1], "/leader/member_1")
        claim["node"] = None
        self.failureResultOf(store.put("a", b"2"), StoreFenced)
        self.assertEqual(len(saves.saved), 1)
        self.assertEqual(self.successResultOf(store.get("a")), b"1")

    def test_a_failed_load_is_reported_and_tried_again(self) -> None:
        """A load that fails fails the read; the next call loads again."""
        saves = Saves()
        saves.fail_load = True
        store = SnapshotStore(saves.load, saves.save)
        self.failureResultOf(store.get("a"), StoreError)
        saves.fail_load = False
        self.assertIsNone(self.successResultOf(store.get("a")))
        self.assertEqual(saves.loads, 2)

    def test_file_snapshots_survive_a_restart_and_bad_directories_are_errors(self) -> None:
        """A file snapshot is read back by the next store; an unusable path fails the write, naming it."""
        path = os.path.join(os.path.abspath(self.mktemp()), "state.json")
        self.successResultOf(SnapshotStore(*file_snapshot(path)).put("id", b"\x00binary\xff"))
        self.assertEqual(self.successResultOf(SnapshotStore(*file_snapshot(path)).get("id")), b"\x00binary\xff")
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w") as f:
            f.write("a file, not a directory")
        failure = self.failureResultOf(SnapshotStore(*file_snapshot(os.path.join(blocker, "state.json")))
                                       .put("id", b"x"), StoreError)
        self.assertIn(f"{blocker}/state.json: Not a directory", str(failure.value))

    def test_an_unreadable_snapshot_fails_reads_and_writes_and_keeps_the_file(self) -> None:
        """A corrupt state file is an error on every access, and is never overwritten."""
        path = os.path.join(os.path.abspath(self.mktemp()), "state.json")
        os.makedirs(os.path.dirname(path))
        for garbage in (b"{not json", b'["a", "list"]', b'{"id": "%%% not base64"}'):
            with open(path, "wb") as f:
                f.write(garbage)
            store = SnapshotStore(*file_snapshot(path))
            failure = self.failureResultOf(store.get("id"), StoreError)
            self.assertIn("unreadable", str(failure.value))
            self.failureResultOf(store.put("id", b"x"), StoreError)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), garbage)
