"""The streamer holds the garbage collector back for the length of a turn, never longer; so do a whole answer
made at once and the choice of a /master/tasks page."""

from __future__ import annotations

import gc
import heapq
from collections.abc import Iterator
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from mesostw.http import stream
from mesostw.http.router import Router
from mesostw.master import operator_http
from mesostw.master.http import MasterEndpoints
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.web import Client


class Request:
    """What the streamer uses of a request: it writes, finishes and (un)registers itself."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.finished = 0
        self.producer: object = None
        self.path = b"/test"
        self.channel = None

    def registerProducer(self, producer: object, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self) -> defer.Deferred[None]:
        return defer.Deferred()

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def finish(self) -> None:
        self.finished += 1


class CollectorTests(unittest.TestCase):
    def setUp(self) -> None:
        self.addCleanup(gc.enable)  # whatever a failing test left
        self.clock = task.Clock()
        self.seen: list[bool] = []

    def pieces(self, count: int, fail_at: int | None = None) -> Iterator[bytes]:
        for index in range(count):
            self.seen.append(gc.isenabled())
            if index == fail_at:
                raise RuntimeError("a broken piece")
            yield b"x"

    def run_turns(self, request: Request, pieces: Iterator[bytes]) -> None:
        stream.Streamer(request, pieces, self.clock, turn_bytes=2).start()
        for _ in range(20):
            self.clock.advance(0)

    def test_collector_off_while_making_pieces(self) -> None:
        """Pieces are made with the collector off; between turns and once the answer is done it is on again."""
        request = Request()
        between: list[bool] = []
        self.clock.callLater(0, lambda: between.append(gc.isenabled()))
        self.run_turns(request, self.pieces(6))
        self.assertEqual(request.finished, 1)
        self.assertEqual(b"".join(request.written), b"xxxxxx")
        self.assertEqual(self.seen, [False] * 6)
        self.assertEqual(between, [True])
        self.assertTrue(gc.isenabled())

    def test_collector_back_on_after_a_broken_piece(self) -> None:
        """A piece that raises ends the answer and the collector is on again."""
        request = Request()
        self.run_turns(request, self.pieces(6, fail_at=3))
        self.assertEqual(self.seen, [False] * 4)
        self.assertTrue(gc.isenabled())
        self.flushLoggedErrors(RuntimeError)

    def test_collector_left_off_when_it_was_off(self) -> None:
        """A process that turned the collector off finds it off after a turn (it is not turned on for it)."""
        gc.disable()
        request = Request()
        self.run_turns(request, self.pieces(4))
        self.assertFalse(gc.isenabled())
        gc.enable()
        self.assertEqual(self.seen, [False] * 4)

    def test_whole_answer_made_with_the_collector_off(self) -> None:
        """stream.pieces makes a whole answer (a snapshot of one instant) with the collector off, the same
        bytes as encoding it; the collector is on again after, also when a piece raises."""
        texts = (piece.decode() for piece in self.pieces(3))
        made = stream.pieces(stream.Fields({"a": stream.Texts(f'"{text}"' for text in texts), "b": 1}))
        self.assertEqual(b"".join(made), b'{"a":["x","x","x"],"b":1}')
        self.assertEqual(self.seen, [False] * 3)
        self.assertTrue(gc.isenabled())
        broken = (piece.decode() for piece in self.pieces(3, fail_at=1))
        self.assertRaises(RuntimeError, stream.pieces, stream.Texts(f'"{text}"' for text in broken))
        self.assertTrue(gc.isenabled())


class TasksPageCollectorTests(unittest.TestCase):
    def test_page_chosen_with_the_collector_off(self) -> None:
        """/master/tasks chooses its page among every task with the collector off (the keys it makes for each
        task are never promoted), and turns it on again after."""
        cluster = Cluster(agents=1)
        self.addCleanup(cluster.stop)
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task(f"t{i}", "sleep 100") for i in range(5)]
        cluster.framework("pages", scheduler=scheduler)
        router = Router()
        MasterEndpoints(cluster.master, {}).install(router)
        seen: list[bool] = []

        class Heap:
            @staticmethod
            def nlargest(count: int, keys: list[Any]) -> list[Any]:
                seen.append(gc.isenabled())
                return heapq.nlargest(count, keys)

            nsmallest = staticmethod(heapq.nsmallest)

        self.patch(operator_http, "heapq", Heap)
        page = Client(router).get_json("/master/tasks?limit=2&offset=1")["tasks"]
        self.assertEqual(len(page), 2)
        self.assertEqual(seen, [False])
        self.assertTrue(gc.isenabled())
