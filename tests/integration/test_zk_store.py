"""The ZooKeeper store against a real ZooKeeper server (one per test class, a fresh root per test)."""

from __future__ import annotations

import itertools
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from mesostw.store import Delete, Put, StoreError, StoreFenced
from mesostw.store.zookeeper import _OPERATION_BYTES, MAX_REQUEST_BYTES, ZooKeeperStateStore
from mesostw.zk.client import ZooKeeper
from mesostw.zk.url import parse_zk_url
from tests.helpers.processes import wait_for
from tests.helpers.store_behaviour import StoreBehaviour
from tests.helpers.zookeeper import AVAILABLE, ZooKeeperEnsemble

if not AVAILABLE:
    raise RuntimeError("ZooKeeper is not installed: `make test` installs Debian's zookeeper package")

_roots = itertools.count()


class ZooKeeperStoreTestCase(unittest.TestCase):
    """One standalone server for the class; each test works under its own root."""

    timeout = 60
    ensemble: ZooKeeperEnsemble

    @classmethod
    def setUpClass(cls) -> None:
        cls.ensemble = ZooKeeperEnsemble(1)
        cls.ensemble.start_blocking()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ensemble.stop()

    def setUp(self) -> None:
        self.base = f"/test{next(_roots)}"
        self.root = f"{self.base}/state"

    @defer.inlineCallbacks
    def client(self) -> Any:
        zk = ZooKeeper(reactor, parse_zk_url(self.ensemble.url(self.base)), session_timeout=4.0)
        self.addCleanup(zk.stop)
        yield zk.start()
        return zk

    @defer.inlineCallbacks
    def elected(self) -> Any:
        """A session and its ephemeral election node: (client, node path)."""
        zk = yield self.client()
        yield zk.ensure_path(f"{self.base}/leader")
        node = yield zk.create(f"{self.base}/leader/member_", b"me", ephemeral=True, sequence=True)
        return zk, node

    @defer.inlineCallbacks
    def fenced_store(self) -> Any:
        self.writer, self.fence_node = yield self.elected()
        store = ZooKeeperStateStore(self.writer, self.root, lambda: self.fence_node)
        yield store.load()
        return store

    @defer.inlineCallbacks
    def znodes(self, path: str | None = None) -> Any:
        """Every znode under ``path`` (the root by default) as {relative path: data}, read directly."""
        reader = getattr(self, "_reader", None) or (yield self.client())
        self._reader = reader
        top = path or self.root
        found: dict[str, bytes] = {}

        @defer.inlineCallbacks
        def walk(znode: str) -> Any:
            for child in (yield reader.get_children(znode)):
                below = f"{znode}/{child}"
                data, _ = yield reader.get(below)
                found[below[len(top) + 1:]] = data
                yield walk(below)

        yield walk(top)
        return found


class ZooKeeperStoreBehaviourTests(StoreBehaviour, ZooKeeperStoreTestCase):
    def make_store(self) -> defer.Deferred:
        return self.fenced_store()

    @defer.inlineCallbacks
    def reopen(self) -> Any:
        reader = yield self.client()
        store = ZooKeeperStateStore(reader, self.root)
        yield store.load()
        return store

    @defer.inlineCallbacks
    def depose(self, store: Any) -> Any:
        other = yield self.client()
        yield other.delete(self.fence_node)


class ZooKeeperStoreTests(ZooKeeperStoreTestCase):
    @defer.inlineCallbacks
    def test_one_znode_per_path(self) -> Any:
        """Each value is the raw data of its own znode; parents are empty znodes, removed once empty."""
        store = yield self.fenced_store()
        yield store.commit([Put("agents/S1", b'{"id":"S1"}'), Put("agents/S2", b"2"), Put("weights", b"{}")])
        self.assertEqual((yield self.znodes()), {"agents": b"", "agents/S1": b'{"id":"S1"}', "agents/S2": b"2",
                                                 "weights": b"{}"})
        yield store.commit([Delete("agents/S1"), Delete("agents/S2"), Put("deep/a/b", b"x")])
        self.assertEqual((yield self.znodes()), {"weights": b"{}", "deep": b"", "deep/a": b"", "deep/a/b": b"x"})
        yield store.delete("deep/a/b")
        self.assertEqual((yield self.znodes()), {"weights": b"{}"})

    @defer.inlineCallbacks
    def test_reads_what_others_wrote(self) -> Any:
        """Loading reads znodes written by other programs: data is a value, empty parents are none."""
        other = yield self.client()
        yield other.create(f"{self.root}/agents/S1", b"a", makepath=True)
        yield other.create(f"{self.root}/frameworks", b"")
        yield other.create(f"{self.root}/app", b"spec")
        yield other.create(f"{self.root}/app/task", b"t")
        store = ZooKeeperStateStore(other, self.root)
        self.assertEqual((yield store.children("")), ["agents", "app", "frameworks"])
        self.assertIsNone((yield store.get("agents")))
        self.assertEqual((yield store.get("app")), b"spec")
        self.assertEqual((yield store.children("frameworks")), [])
        yield store.put("frameworks/F1", b"f")  # the existing section is used, not created again
        self.assertEqual((yield self.znodes())["frameworks/F1"], b"f")

    @defer.inlineCallbacks
    def test_fenced_after_session_expired(self) -> Any:
        """When the writer's session expires its election node goes, and its writes (on a new session) are fenced."""
        store = yield self.fenced_store()
        yield store.put("a", b"1")
        old_session = self.writer.session_id
        yield threads.deferToThread(expire, self.writer)
        yield wait_for(lambda: self.writer.session_id not in (None, old_session), 20, what="a new session")
        yield wait_for(lambda: self.writer.state == "CONNECTED", 20, what="the reconnection")
        error = yield self.assertFailure(store.put("a", b"2"), StoreError)
        if not isinstance(error, StoreFenced):  # the first write may meet the reconnection; the next is fenced
            yield self.assertFailure(store.put("a", b"2"), StoreFenced)
        self.assertEqual((yield self.znodes()), {"a": b"1"})

    @defer.inlineCallbacks
    def test_not_contending(self) -> Any:
        """A store whose writer has no election node refuses writes at once, sending nothing."""
        zk = yield self.client()
        store = ZooKeeperStateStore(zk, self.root, lambda: None)
        error = yield self.assertFailure(store.put("a", b"1"), StoreFenced)
        self.assertIn("not contending", str(error))
        self.assertFalse((yield zk.exists(self.root)))

    @defer.inlineCallbacks
    def test_refused_transaction_is_undone(self) -> Any:
        """A transaction ZooKeeper refuses (a node another program made) fails; the store reads the subtree
        again and the commits behind it proceed."""
        store = yield self.fenced_store()
        other = yield self.client()
        yield other.create(f"{self.root}/agents/S9", b"{}", makepath=True)
        conflicting = store.commit([Put("agents/S9", b"mine"), Put("agents/S8", b"8")])
        behind = store.put("agents/S1", b"1")
        error = yield self.assertFailure(conflicting, StoreError)
        self.assertNotIsInstance(error, StoreFenced)
        self.assertIn("NodeExistsError", str(error))
        yield behind
        self.assertEqual((yield store.children("agents")), ["S1", "S9"])
        self.assertEqual((yield store.get("agents/S9")), b"{}")
        self.assertEqual((yield self.znodes()), {"agents": b"", "agents/S1": b"1", "agents/S9": b"{}"})

    @defer.inlineCallbacks
    def test_values_over_the_node_limit(self) -> Any:
        """A value over 1 MB, or a commit over the request limit, is refused with StoreError before sending."""
        store = yield self.fenced_store()
        error = yield self.assertFailure(store.put("big", b"x" * (MAX_REQUEST_BYTES + 1)), StoreError)
        self.assertIn("1 MB", str(error))
        halves = [Put(f"half{i}", b"x" * (MAX_REQUEST_BYTES // 2)) for i in range(3)]
        error = yield self.assertFailure(store.commit(halves), StoreError)
        self.assertIn("1 MB", str(error))
        self.assertEqual((yield self.znodes()), {})
        # Many large commits made at once are split into transactions under the limit; all succeed.
        yield defer.gatherResults([store.put(f"part{i}", b"y" * 300_000) for i in range(8)])
        self.assertEqual(len((yield self.znodes())), 8)

    @defer.inlineCallbacks
    def test_a_transaction_of_many_small_operations_up_to_the_limit(self) -> Any:
        """Thousands of small puts (a burst of run records) making a transaction just under the request
        limit, as the store reckons it, are accepted by ZooKeeper in one transaction."""
        store = yield self.fenced_store()
        value = b"v" * 120
        path = f"{self.root}/runs/job-00000:1714564800000"
        count = (MAX_REQUEST_BYTES - 2_000) // (len(path) + len(value) + _OPERATION_BYTES)
        ops = [Put(f"runs/job-{n:05d}:1714564800000", value) for n in range(count)]
        yield store.commit(ops)
        self.assertGreater(count, 4_000)
        self.assertEqual(len((yield self.znodes(f"{self.root}/runs"))), count)
        again = ZooKeeperStateStore((yield self.client()), self.root)
        self.assertEqual(len((yield again.children("runs"))), count)

    @defer.inlineCallbacks
    def test_a_write_lost_after_it_committed_succeeds_once(self) -> Any:
        """The connection breaks after ZooKeeper committed a transaction (its answer is lost): the store
        reads the subtree again, finds the write there and reports success, without writing it twice."""
        store = yield self.fenced_store()
        yield store.put("a", b"1")
        faults = LosingAnswers(self.writer, commit_first=True)
        store.zk = faults
        yield store.commit([Put("b", b"2"), Delete("a")])
        self.assertEqual(faults.lost, 1)
        self.assertEqual(faults.sent, 1, "a committed write is not sent again")
        self.assertEqual((yield self.znodes()), {"b": b"2"})
        self.assertEqual((yield store.get("b")), b"2")

    @defer.inlineCallbacks
    def test_a_write_lost_before_it_committed_is_sent_again(self) -> Any:
        """The connection breaks before ZooKeeper saw the transaction: the store finds the subtree as it
        was and sends it again, so the commit succeeds; commits queued behind it follow in order."""
        store = yield self.fenced_store()
        faults = LosingAnswers(self.writer, commit_first=False)
        store.zk = faults
        first = store.put("a", b"1")
        behind = store.put("a", b"2")
        yield defer.gatherResults([first, behind])
        # One answer lost; then one transaction carries the first commit again with the one behind it.
        self.assertEqual((faults.lost, faults.sent), (1, 1))
        self.assertEqual((yield self.znodes()), {"a": b"2"})

    @defer.inlineCallbacks
    def test_a_write_in_doubt_while_zookeeper_stays_away_fails_after_the_session_timeout(self) -> Any:
        """If the subtree cannot be read again within the session timeout, the commit in doubt fails
        with StoreError (a writer whose session is gone must not go on as if it wrote)."""
        store = yield self.fenced_store()
        yield store.put("a", b"1")
        faults = LosingAnswers(self.writer, commit_first=False, unreadable=True)
        faults.session_timeout = 1.0
        store.zk = faults
        error = yield self.assertFailure(store.put("b", b"2"), StoreError)
        self.assertIn("cannot read the store", str(error))
        self.assertEqual((yield self.znodes()), {"a": b"1"})


class StandbyMirrorTests(ZooKeeperStoreTestCase):
    """A standby's store reads the subtree ahead and, elected, serves it without reading it again, unless a
    change was reported since: then it reads it again (its mirror is never trusted beyond what ZooKeeper says)."""

    @defer.inlineCallbacks
    def standby(self) -> Any:
        """The leader's fenced store holding agents/a, and a standby's store following it."""
        from mesostw.store import zookeeper as module

        self.patch(module, "REFRESH_DELAY", 0.05)
        self.patch(module, "REFRESH_FACTOR", 0.0)
        self.leader = yield self.fenced_store()
        yield self.leader.commit([Put("agents/a", b"A")])
        self.standby_zk = yield self.client()
        store = ZooKeeperStateStore(self.standby_zk, self.root)
        self.addCleanup(store.lead)
        store.follow()
        yield wait_for(lambda: store.trusted, 10, what="the standby's first read")
        return store

    @defer.inlineCallbacks
    def test_read_ahead_and_again_after_changes(self) -> Any:
        """Following, the store reads the subtree at once, and again after the leader changes it (a new value,
        a changed one, one deleted); elected, it serves its mirror without reading."""
        store = yield self.standby()
        self.assertEqual(store.reads, 1)
        for change in ([Put("agents/b", b"B")], [Put("agents/a", b"A2")], [Delete("agents/b")],
                       [Put("agents/c", b"C"), Put("weights", b"{}")]):
            reads = store.reads
            yield self.leader.commit(change)
            yield wait_for(lambda reads=reads: store.reads > reads and store.trusted, 10, what="a read again")
        store.lead()
        self.assertEqual((yield store.children("agents")), ["a", "c"])
        self.assertEqual((yield store.get("agents/a")), b"A2")
        self.assertEqual((yield store.get("weights")), b"{}")
        self.assertFalse(store.following)
        yield self.leader.commit([Put("agents/d", b"D")])  # the old writer's change now reported goes unheeded
        yield self.standby_zk.exists(self.root)
        self.assertTrue(store.trusted)

    @defer.inlineCallbacks
    def test_a_change_reported_before_the_election_is_read(self) -> Any:
        """A change reported just before the store leads (before it could read again) makes it read the subtree
        again at first use: ZooKeeper reports it before its session's later answers, as before its election."""
        from mesostw.store import zookeeper as module

        store = yield self.standby()
        self.patch(module, "REFRESH_DELAY", 60.0)  # no read ahead of this one
        yield self.leader.commit([Put("agents/b", b"B"), Put("agents/a", b"A2")])
        yield self.standby_zk.exists(self.root)  # later on the same session than the report
        self.assertFalse(store.trusted)
        store.lead()
        self.assertEqual((yield store.children("agents")), ["a", "b"])
        self.assertEqual((yield store.get("agents/a")), b"A2")
        self.assertEqual(store.reads, 2)

    @defer.inlineCallbacks
    def test_following_while_reading_unwatched(self) -> Any:
        """A store told to follow while it reads the subtree without watches (as its writer) reads it again,
        watched: the read in flight could not report later changes."""
        from mesostw.store import zookeeper as module

        self.patch(module, "REFRESH_DELAY", 60.0)
        self.leader = yield self.fenced_store()
        yield self.leader.commit([Put("agents/a", b"A")])
        zk = yield self.client()
        store = ZooKeeperStateStore(zk, self.root)
        self.addCleanup(store.lead)
        loading = store.load()
        store.follow()
        yield loading
        self.assertEqual((store.reads, store.trusted), (2, True))
        yield self.leader.commit([Put("agents/b", b"B")])
        yield zk.exists(self.root)
        self.assertFalse(store.trusted)

    @defer.inlineCallbacks
    def test_a_change_while_reading_ahead_is_read_again(self) -> Any:
        """A change reported while the standby reads the subtree makes it read it again, not trust that read."""
        store = yield self.standby()
        reads = store.reads
        store._changed()  # as a report arriving in the middle of the next read
        store._start_read()
        store._changed()
        yield wait_for(lambda: store.reads >= reads + 2 and store.trusted, 10, what="the read after the change")


class LosingAnswers:
    """A ZooKeeper client whose next transaction's answer is lost, as when the connection breaks: the
    transaction is sent first (``commit_first``) or not at all; ``unreadable`` makes reads fail too."""

    def __init__(self, zk: ZooKeeper, commit_first: bool, unreadable: bool = False):
        self.zk = zk
        self.reactor = zk.reactor
        self.session_timeout = zk.session_timeout
        self.commit_first = commit_first
        self.unreadable = unreadable
        self.lost = 0
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.zk, name)

    def read_tree(self, path: str) -> defer.Deferred:
        if self.unreadable:
            return defer.fail(ConnectionLoss())
        return self.zk.read_tree(path)

    def results(self, transaction: Any) -> defer.Deferred:
        if self.lost:
            self.sent += 1
            return self.zk.results(transaction)
        self.lost += 1
        if not self.commit_first:
            return defer.fail(ConnectionLoss())
        self.sent += 1
        return self.zk.results(transaction).addCallback(lambda _: defer.fail(ConnectionLoss()))


def expire(zk: ZooKeeper) -> None:
    """End ``zk``'s session from outside (as a server does when it times out), blocking."""
    session_id, password = zk.kazoo.client_id
    thief = KazooClient(hosts=zk.url.hosts, client_id=(session_id, password))
    thief.start(timeout=10)
    thief.stop()
    thief.close()
