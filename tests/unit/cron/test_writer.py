"""Store writes: one commit per reactor turn, in order, retried when the store is away, and stopped for
good when another instance has taken the store."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer

from frameworks.cron import writer as W
from frameworks.cron.writer import StoreWriter
from mesostw.store import Delete, Put, StoreError, StoreFenced
from mesostw.store.memory import MemoryStateStore
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cron import CronOnACluster, job


class SlowStore(MemoryStateStore):
    """A memory store whose commits complete when the test says, or fail as told."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[list[Any], defer.Deferred]] = []

    def commit(self, operations: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        ops = list(operations)
        self.calls.append((ops, d))
        return d

    def finish(self, index: int = -1) -> None:
        ops, d = self.calls[index]
        MemoryStateStore.commit(self, ops)
        d.callback(None)


class WriterTests(ClockTestCase):
    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.store = SlowStore()
        self.fenced: list[Any] = []
        self.writer = StoreWriter(self.store, self.clock, self.fenced.append)

    def test_one_commit_per_turn_in_order(self) -> None:
        """Writes of one turn go out together (the last write to a path wins) and fire once durable."""
        done: list[int] = []
        self.writer.write([Put("a", b"1"), Put("b", b"1")]).addCallback(lambda _: done.append(1))
        self.writer.write([Put("a", b"2"), Delete("b")]).addCallback(lambda _: done.append(2))
        self.clock.advance(0)
        [(ops, _)] = self.store.calls
        self.assertEqual(ops, [Put("a", b"2"), Delete("b")])
        self.assertEqual(done, [])
        self.store.finish()
        self.assertEqual((done, self.store.tree.as_dict()), ([1, 2], {"a": b"2"}))

    def test_commits_never_overlap(self) -> None:
        """A write made while a commit is in flight goes out after it, in a commit of its own."""
        self.writer.write([Put("a", b"1")])
        self.clock.advance(0)
        self.writer.write([Put("a", b"2")])
        self.clock.advance(0)
        self.assertEqual(len(self.store.calls), 1)
        self.store.finish(0)
        self.clock.advance(0)
        self.assertEqual(len(self.store.calls), 2)
        self.store.finish(1)
        self.assertEqual(self.store.tree.as_dict(), {"a": b"2"})

    def test_a_failed_commit_is_retried(self) -> None:
        """The store is away: the same writes are committed again after a backoff, then fire."""
        done: list[Any] = []
        self.writer.write([Put("a", b"1")]).addCallback(done.append)
        self.clock.advance(0)
        self.store.calls[0][1].errback(StoreError("connection loss"))
        self.flushLoggedErrors(StoreError)
        self.clock.advance(0.5)
        self.assertEqual(len(self.store.calls), 2)
        self.store.finish(1)
        self.assertEqual((done, self.store.tree.as_dict()), ([None], {"a": b"1"}))

    def test_fenced_stops_writing_for_good(self) -> None:
        """Another instance holds the store: every waiting write fails, and so does every later one."""
        failures: list[Any] = []
        self.writer.write([Put("a", b"1")]).addErrback(failures.append)
        self.clock.advance(0)
        self.writer.write([Put("b", b"1")]).addErrback(failures.append)
        self.store.calls[0][1].errback(StoreFenced("gone"))
        self.assertEqual(len(failures), 2)
        self.assertEqual(len(self.fenced), 1)
        self.failureResultOf(self.writer.write([Put("c", b"1")]), StoreFenced)

    def test_large_writes_are_split_between_events_not_within(self) -> None:
        """Past the commit size, the next event's writes go in the next commit."""
        self.patch(W, "MAX_COMMIT_BYTES", 200)  # two puts of 8 bytes (73 each with path and allowance) fit
        self.writer.write([Put("a", b"12345678"), Put("b", b"12345678")])
        self.writer.write([Put("c", b"1")])
        self.clock.advance(0)
        self.assertEqual([op.path for op in self.store.calls[0][0]], ["a", "b"])
        self.store.finish(0)
        self.clock.advance(0)
        self.assertEqual([op.path for op in self.store.calls[1][0]], ["c"])


    def test_an_event_over_the_limit_is_written_job_by_job(self) -> None:
        """An event larger than a commit goes in several commits, each holding whole jobs (a job's record
        with its runs), in order; the event is durable once the last one is."""
        self.patch(W, "MAX_COMMIT_BYTES", 700)
        ops = []
        for name in ("a", "b", "c", "d"):
            ops += [Put(f"runs/{name}:1000", b"r" * 40), Put(f"jobs/{name}", b"j" * 60), Delete(f"runs/{name}:900")]
        ops.append(Put("framework_id", b"F"))
        done: list[Any] = []
        self.writer.write(ops).addCallback(done.append)
        self.clock.advance(0)
        for index in range(3):
            self.assertEqual(done, [])
            self.store.finish(index)
            self.clock.advance(0)
        self.assertEqual(done, [None])
        commits = [[op.path for op in call[0]] for call in self.store.calls]
        self.assertEqual(commits, [["runs/a:1000", "jobs/a", "runs/a:900", "runs/b:1000", "jobs/b", "runs/b:900"],
                                   ["runs/c:1000", "jobs/c", "runs/c:900", "runs/d:1000", "jobs/d", "runs/d:900"],
                                   ["framework_id"]])
        self.assertTrue(all(W.weight(call[0]) <= 700 for call in self.store.calls))

    def test_a_split_event_fails_as_a_whole_when_fenced(self) -> None:
        """When the store is taken over halfway through a split event, the event fails with StoreFenced."""
        self.patch(W, "MAX_COMMIT_BYTES", 200)
        ops = [Put(f"jobs/{name}", b"j" * 100) for name in ("a", "b", "c")]
        failures: list[Any] = []
        self.writer.write(ops).addErrback(failures.append)
        self.clock.advance(0)
        self.store.finish(0)
        self.clock.advance(0)
        self.store.calls[1][1].errback(StoreFenced("gone"))
        [failure] = failures
        self.assertTrue(failure.check(StoreFenced))
        self.assertEqual(self.store.tree.as_dict(), {"jobs/a": b"j" * 100})


class FencedServiceTests(ClockTestCase):
    def test_a_deposed_instance_stops_and_says_so(self) -> None:
        """When the store fences this instance off, the API answers 503, the driver stops, nothing launches."""
        cron = CronOnACluster(self)
        self.assertEqual(cron.post(job("a")), 204)
        leading = [True]
        cron.store.fence = lambda: leading[0]
        leading[0] = False
        reply = cron.client.request("POST", "/v1/scheduler/iso8601", json.dumps(job("b")).encode(),
                                    {"Content-Type": "application/json"})
        self.assertEqual(reply.code, 503)
        self.assertTrue(cron.service.deposed)
        self.assertEqual(cron.client.get("/v1/scheduler/jobs").code, 503)
        cron.advance(120)
        self.assertEqual(cron.launched("a"), [])
