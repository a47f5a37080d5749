"""What every IStateStore does, as a mixin run against each provider (memory, files, ZooKeeper).

A test case mixing it in provides ``make_store()`` (a Deferred firing with a new, empty store
that the test case cleans up), ``reopen()`` (a Deferred firing with another store on the same
durable data, as a restarted process would open it) and ``depose(store)`` (a Deferred firing once
the store's writer has lost its claim).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from zope.interface.verify import verifyObject

from mesostw.interfaces import IStateStore
from mesostw.store import Delete, Put, StoreFenced, get_json, put_json


class StoreBehaviour:
    """The behaviour suite; mix into a ``twisted.trial.unittest.TestCase``."""

    def make_store(self) -> defer.Deferred:
        raise NotImplementedError

    def reopen(self) -> defer.Deferred:
        raise NotImplementedError

    def depose(self, store: Any) -> defer.Deferred:
        raise NotImplementedError

    @defer.inlineCallbacks
    def contents(self, store: Any, path: str = "") -> Any:
        """Every value under ``path`` as {path: bytes}, walked with children() and get()."""
        found: dict[str, bytes] = {}
        for name in (yield store.children(path)):
            child = f"{path}/{name}" if path else name
            value = yield store.get(child)
            if value is not None:
                found[child] = value
            found.update((yield self.contents(store, child)))
        return found

    @defer.inlineCallbacks
    def test_provides_interface(self) -> Any:
        """The store and its scoped views provide IStateStore."""
        store = yield self.make_store()
        self.assertTrue(verifyObject(IStateStore, store))  # type: ignore[attr-defined]
        self.assertTrue(verifyObject(IStateStore, store.scoped("a")))  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_get_put_delete(self) -> Any:
        """A value put is got back as bytes; replaced by the next put; gone once deleted; absent is None."""
        store = yield self.make_store()
        self.assertIsNone((yield store.get("a")))
        yield store.put("a", b"one")
        self.assertEqual((yield store.get("a")), b"one")
        yield store.put("a", b"\x00\xff two")
        self.assertEqual((yield store.get("a")), b"\x00\xff two")
        yield store.delete("a")
        self.assertIsNone((yield store.get("a")))
        yield store.delete("a")  # absent is fine
        yield store.put("empty", b"")
        self.assertEqual((yield store.get("empty")), b"")

    @defer.inlineCallbacks
    def test_values_are_bytes(self) -> Any:
        """A value that is not bytes is refused with TypeError and nothing is written."""
        store = yield self.make_store()
        value: Any
        for value in ("text", 3, None, {"a": 1}, bytearray(b"x")):
            yield self.assertFailure(store.put("a", value), TypeError)  # type: ignore[attr-defined]
        self.assertIsNone((yield store.get("a")))
        self.assertEqual((yield store.children("")), [])

    @defer.inlineCallbacks
    def test_paths_are_normalized(self) -> Any:
        """Leading, trailing and doubled slashes do not matter; '.' and '..' are refused."""
        store = yield self.make_store()
        yield store.put("/a//b/", b"x")
        self.assertEqual((yield store.get("a/b")), b"x")
        self.assertEqual((yield store.children("/a/")), ["b"])
        for bad in ("a/../b", "./a", ".."):
            yield self.assertFailure(store.put(bad, b"x"), ValueError)  # type: ignore[attr-defined]
        yield self.assertFailure(store.put("", b"x"), ValueError)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_nested_paths_and_children(self) -> Any:
        """Children are the sorted names directly below a path; a parent exists while it has children."""
        store = yield self.make_store()
        yield store.commit([Put("jobs/b/spec", b"2"), Put("jobs/a/spec", b"1"), Put("jobs/a/runs/1", b"r"),
                            Put("jobs/a-b", b"3"), Put("jobs/a0", b"4"), Put("weights", b"w")])
        self.assertEqual((yield store.children("")), ["jobs", "weights"])
        self.assertEqual((yield store.children("jobs")), ["a", "a-b", "a0", "b"])
        self.assertEqual((yield store.children("jobs/a")), ["runs", "spec"])
        self.assertEqual((yield store.children("jobs/a/spec")), [])
        self.assertEqual((yield store.children("missing/path")), [])
        self.assertIsNone((yield store.get("jobs")))
        self.assertIsNone((yield store.get("jobs/a")))
        yield store.delete("jobs/a/runs/1")
        self.assertEqual((yield store.children("jobs/a")), ["spec"])
        yield store.delete("jobs/b/spec")
        self.assertEqual((yield store.children("jobs")), ["a", "a-b", "a0"])

    @defer.inlineCallbacks
    def test_names_with_punctuation(self) -> Any:
        """Names may hold ':', '#', '@', '=', '%', '.', '-', '_' and spaces (run keys are ``job:due``)."""
        store = yield self.make_store()
        names = ["job-1:1714564800000", "a.b_c:d:e", "x#1", "u@h=v%20 w", "...a"]
        yield store.commit([Put(f"runs/{name}", name.encode()) for name in names])
        self.assertEqual((yield store.children("runs")), sorted(names))
        for name in names:
            self.assertEqual((yield store.get(f"runs/{name}")), name.encode())
        yield store.delete("runs/a.b_c:d:e")
        again = yield self.reopen()
        self.assertEqual((yield again.children("runs")), sorted(set(names) - {"a.b_c:d:e"}))
        self.assertEqual((yield again.get("runs/job-1:1714564800000")), b"job-1:1714564800000")

    @defer.inlineCallbacks
    def test_parent_with_a_value(self) -> Any:
        """A path may hold a value and have children; deleting a child keeps the value."""
        store = yield self.make_store()
        yield store.put("app", b"spec")
        yield store.put("app/tasks/t1", b"t")
        self.assertEqual((yield store.get("app")), b"spec")
        yield store.delete("app/tasks/t1")
        self.assertEqual((yield store.get("app")), b"spec")
        self.assertEqual((yield store.children("app")), [])
        self.assertEqual((yield store.children("")), ["app"])

    @defer.inlineCallbacks
    def test_delete_is_recursive(self) -> Any:
        """Deleting a path removes everything under it and nothing beside it."""
        store = yield self.make_store()
        yield store.commit([Put("a", b"1"), Put("a/b", b"2"), Put("a/b/c", b"3"), Put("ab", b"4"),
                            Put("a-c", b"5")])
        yield store.delete("a")
        self.assertEqual((yield self.contents(store)), {"ab": b"4", "a-c": b"5"})
        yield store.delete("")
        self.assertEqual((yield store.children("")), [])

    @defer.inlineCallbacks
    def test_commit_applies_in_order(self) -> Any:
        """The operations of a commit apply in order: a put after a delete stays, a delete after a put wins."""
        store = yield self.make_store()
        yield store.commit([Put("x/1", b"a"), Delete("x"), Put("x/2", b"b"), Put("y", b"c"), Delete("y"),
                            Put("z", b"1"), Put("z", b"2")])
        self.assertEqual((yield self.contents(store)), {"x/2": b"b", "z": b"2"})

    @defer.inlineCallbacks
    def test_commit_is_atomic(self) -> Any:
        """A commit holding one invalid operation fails and changes nothing."""
        store = yield self.make_store()
        yield store.put("keep", b"1")
        yield self.assertFailure(store.commit([Put("a", b"1"), Delete("keep"), Put("b", "text")]),  # type: ignore
                                 TypeError)
        yield self.assertFailure(store.commit([Put("a", b"1"), Put("../b", b"2")]), ValueError)  # type: ignore
        yield self.assertFailure(store.commit([Put("a", b"1"), "not an operation"]), TypeError)  # type: ignore
        self.assertEqual((yield self.contents(store)), {"keep": b"1"})
        again = yield self.reopen()
        self.assertEqual((yield self.contents(again)), {"keep": b"1"})

    @defer.inlineCallbacks
    def test_scoped_views(self) -> Any:
        """A scoped view reads and writes under its prefix; views nest; deleting a view's root empties it."""
        store = yield self.make_store()
        cron = store.scoped("frameworks/cron")
        yield cron.commit([Put("jobs/j1", b"1"), Put("jobs/j2", b"2")])
        yield put_json(cron.scoped("meta"), "/version", {"v": 1})
        self.assertEqual((yield store.get("frameworks/cron/jobs/j1")), b"1")
        self.assertEqual((yield get_json(store, "frameworks/cron/meta/version")), {"v": 1})
        self.assertEqual((yield get_json(cron, "missing", "default")), "default")
        self.assertEqual((yield cron.children("")), ["jobs", "meta"])
        self.assertEqual((yield cron.scoped("jobs").get("j2")), b"2")
        yield store.put("frameworks/other", b"o")
        yield cron.delete("")
        self.assertEqual((yield self.contents(store)), {"frameworks/other": b"o"})
        yield self.assertFailure(cron.put("../escape", b"x"), ValueError)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_durable(self) -> Any:
        """Whatever a store acknowledged is what the next opener finds."""
        store = yield self.make_store()
        yield store.commit([Put(f"agents/S{i}", b"%d" % i) for i in range(20)])
        yield store.commit([Delete("agents/S3"), Put("weights", b"{}")])
        expected = yield self.contents(store)
        again = yield self.reopen()
        self.assertEqual((yield self.contents(again)), expected)
        self.assertEqual(len(expected), 20)

    @defer.inlineCallbacks
    def test_many_commits_in_one_turn(self) -> Any:
        """Commits issued together all succeed, fire in the order they were made, and are all durable."""
        store = yield self.make_store()
        fired: list[int] = []
        commits = []
        for index in range(200):
            ops = [Put(f"n/{index % 50}", b"%d" % index), Put(f"log/{index:04d}", b"x")]
            if index % 7 == 0:
                ops.append(Delete(f"log/{index - 7:04d}"))
            commits.append(store.commit(ops).addCallback(lambda _, i=index: fired.append(i)))
        yield defer.gatherResults(commits)
        self.assertEqual(fired, list(range(200)))
        expected = {f"n/{i}": b"%d" % (150 + i) for i in range(50)}
        expected.update({f"log/{i:04d}": b"x" for i in range(200) if not (i + 7 < 200 and (i + 7) % 7 == 0)})
        self.assertEqual((yield self.contents(store)), expected)
        again = yield self.reopen()
        self.assertEqual((yield self.contents(again)), expected)

    @defer.inlineCallbacks
    def test_fenced_writer(self) -> Any:
        """Once the writer lost its claim, every write fails with StoreFenced and changes nothing."""
        store = yield self.make_store()
        yield store.put("a", b"1")
        yield self.depose(store)
        yield self.assertFailure(store.put("a", b"2"), StoreFenced)  # type: ignore[attr-defined]
        yield self.assertFailure(store.commit([Put("b", b"1"), Delete("a")]), StoreFenced)  # type: ignore
        yield self.assertFailure(store.scoped("x").put("c", b"1"), StoreFenced)  # type: ignore[attr-defined]
        again = yield self.reopen()
        self.assertEqual((yield self.contents(again)), {"a": b"1"})
