"""The agent's status update manager: one ordered stream per task, head in flight, retried until acked."""

from __future__ import annotations

from mesostw.agent.status_updates import RETRY_MAX, RETRY_MIN, StatusUpdateManager
from mesostw.model import task as T
from mesostw.model.task import TaskStatus, new_uuid
from tests.helpers.clocktest import ClockTestCase


def status(task_id: str, state: str = T.RUNNING, uuid: bytes | None = None) -> TaskStatus:
    return TaskStatus(task_id, state, source=T.SOURCE_EXECUTOR, uuid=uuid or new_uuid(), timestamp=0.0)


class StatusUpdateManagerTests(ClockTestCase):
    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.batches: list[list[tuple[str, TaskStatus]]] = []
        self.manager = StatusUpdateManager(self.clock, self.batches.append)
        self.manager.resume()
        self.addCleanup(self.manager.stop)

    def flush(self) -> None:
        """Run what is due now (the manager batches forwards on the next turn)."""
        self.clock.advance(0)

    @property
    def forwarded(self) -> list[tuple[str, TaskStatus]]:
        return [item for batch in self.batches for item in batch]

    def test_only_head_is_forwarded(self) -> None:
        """Of several updates of one task only the first is sent; other tasks' heads go in the same batch."""
        first, second = status("t1"), status("t1", T.FINISHED)
        other = status("t2")
        self.assertTrue(self.manager.update("fw", first))
        self.assertTrue(self.manager.update("fw", second))
        self.assertTrue(self.manager.update("fw", other))
        self.flush()
        self.assertEqual(self.batches, [[("fw", first), ("fw", other)]])
        self.assertEqual(self.manager.pending("fw", "t1"), [first, second])
        self.assertEqual(sorted(s.task_id for _, s in self.manager.heads()), ["t1", "t2"])

    def test_ack_of_head_forwards_next(self) -> None:
        """Acknowledging the head returns it and sends the next update of that task at once."""
        first, second = status("t1"), status("t1", T.FINISHED)
        self.manager.update("fw", first)
        self.manager.update("fw", second)
        self.flush()
        self.assertEqual(self.manager.acknowledge("fw", "t1", first.uuid), first)
        self.flush()
        self.assertEqual(self.forwarded, [("fw", first), ("fw", second)])
        self.assertEqual(self.manager.pending("fw", "t1"), [second])

    def test_retry_backoff_doubles_to_ten_minutes(self) -> None:
        """An unacknowledged head is re-sent after 10 s, then 20 s, 40 s ... and at most every 600 s."""
        update = status("t1")
        self.manager.update("fw", update)
        times: list[float] = []
        expected_gaps = [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0, 600.0]
        self.flush()
        sent = len(self.forwarded)
        self.assertEqual(sent, 1)
        for gap in expected_gaps:
            self.clock.advance(gap - 0.5)
            self.assertEqual(len(self.forwarded), sent, "re-sent too early")
            self.clock.advance(0.5)
            self.assertEqual(len(self.forwarded), sent + 1, "not re-sent in time")
            sent += 1
            times.append(self.clock.seconds())
        self.assertEqual(RETRY_MIN, 10.0)
        self.assertEqual(RETRY_MAX, 600.0)
        self.assertEqual(times, [10.0, 30.0, 70.0, 150.0, 310.0, 630.0, 1230.0, 1830.0, 2430.0])
        self.assertTrue(all(item == ("fw", update) for item in self.forwarded))

    def test_backoff_restarts_for_next_update(self) -> None:
        """After an acknowledgement the next head starts again at the 10 s retry interval."""
        first, second = status("t1"), status("t1", T.FINISHED)
        self.manager.update("fw", first)
        self.manager.update("fw", second)
        self.flush()
        for gap in (10, 20, 40):  # three retries of the first; its interval is now 80 s
            self.clock.advance(gap)
        self.assertEqual(len(self.forwarded), 4)
        self.manager.acknowledge("fw", "t1", first.uuid)
        self.flush()
        self.assertEqual(self.forwarded[-1], ("fw", second))
        self.clock.advance(9.9)
        self.assertEqual(len(self.forwarded), 5)
        self.clock.advance(0.1)
        self.assertEqual(self.forwarded[-1], ("fw", second))
        self.assertEqual(len(self.forwarded), 6)

    def test_acknowledged_head_is_not_retried(self) -> None:
        """Once the only update of a task is acknowledged nothing is sent again."""
        update = status("t1")
        self.manager.update("fw", update)
        self.flush()
        self.manager.acknowledge("fw", "t1", update.uuid)
        self.clock.advance(3600)
        self.assertEqual(self.forwarded, [("fw", update)])
        self.assertFalse(self.manager.has_pending("fw", "t1"))

    def test_stale_or_duplicate_ack_ignored(self) -> None:
        """An ack naming a non-head update, an unknown stream, or a repeated ack changes nothing."""
        first, second, third = status("t1"), status("t1", T.KILLING), status("t1", T.KILLED)
        for update in (first, second, third):
            self.manager.update("fw", update)
        self.flush()
        self.assertIsNone(self.manager.acknowledge("fw", "t1", second.uuid))
        self.assertIsNone(self.manager.acknowledge("fw", "t1", new_uuid()))
        self.assertIsNone(self.manager.acknowledge("fw", "t2", first.uuid))
        self.assertIsNone(self.manager.acknowledge("other", "t1", first.uuid))
        self.assertEqual(self.manager.pending("fw", "t1"), [first, second, third])
        self.assertEqual(self.manager.acknowledge("fw", "t1", first.uuid), first)
        # The same acknowledgement again (e.g. a scheduler retrying) must not retire ``second``.
        self.assertIsNone(self.manager.acknowledge("fw", "t1", first.uuid))
        self.assertEqual(self.manager.pending("fw", "t1"), [second, third])
        self.flush()
        self.assertEqual(self.forwarded, [("fw", first), ("fw", second)])

    def test_duplicate_uuid_ignored(self) -> None:
        """An update whose UUID was seen already (queued or acknowledged) is dropped and not re-sent."""
        update = status("t1")
        self.assertTrue(self.manager.update("fw", update))
        self.assertFalse(self.manager.update("fw", update))
        self.flush()
        self.assertEqual(self.forwarded, [("fw", update)])
        self.assertEqual(self.manager.pending("fw", "t1"), [update])
        self.manager.acknowledge("fw", "t1", update.uuid)
        self.assertFalse(self.manager.update("fw", update))
        self.flush()
        self.assertEqual(self.forwarded, [("fw", update)])
        self.assertEqual(self.manager.pending("fw", "t1"), [])

    def test_pause_holds_and_resume_resends_all_heads(self) -> None:
        """While paused nothing is sent or retried; resume sends every head at once, backoff reset."""
        a1, a2 = status("a"), status("a", T.FINISHED)
        b1 = status("b")
        self.manager.update("fw", a1)
        self.manager.update("fw", a2)
        self.flush()
        self.clock.advance(10)
        self.clock.advance(20)  # two retries of a1
        self.assertEqual(len(self.forwarded), 3)
        self.manager.pause()
        self.assertTrue(self.manager.paused)
        self.manager.update("fw2", b1)
        self.clock.advance(5000)
        self.assertEqual(len(self.forwarded), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.manager.resume()
        self.flush()
        self.assertEqual(self.batches[-1], [("fw", a1), ("fw2", b1)])
        self.clock.advance(10)  # the retry interval starts over at 10 s
        self.assertEqual(sorted(s.task_id for _, s in self.batches[-1]), ["a", "b"])
        self.assertEqual(len(self.forwarded), 7)

    def test_ack_while_paused_is_kept(self) -> None:
        """An ack that arrives while paused retires the head; the next one is sent on resume."""
        first, second = status("t1"), status("t1", T.FINISHED)
        self.manager.update("fw", first)
        self.manager.update("fw", second)
        self.flush()
        self.manager.pause()
        self.assertEqual(self.manager.acknowledge("fw", "t1", first.uuid), first)
        self.clock.advance(100)
        self.assertEqual(self.forwarded, [("fw", first)])
        self.manager.resume()
        self.flush()
        self.assertEqual(self.forwarded, [("fw", first), ("fw", second)])

    def test_cleanup_drops_framework_streams(self) -> None:
        """cleanup(framework) forgets its streams and their retries; other frameworks are unaffected."""
        gone1, gone2, kept = status("t1"), status("t2"), status("t1")
        self.manager.update("gone", gone1)
        self.manager.update("gone", gone2)
        self.manager.update("kept", kept)
        self.flush()
        self.manager.cleanup("gone")
        self.assertEqual(self.manager.pending("gone", "t1"), [])
        self.assertEqual(self.manager.pending("gone", "t2"), [])
        self.assertEqual(self.manager.pending("kept", "t1"), [kept])
        self.clock.advance(10)
        self.assertEqual(self.batches[-1], [("kept", kept)])
        self.assertIsNone(self.manager.acknowledge("gone", "t1", gone1.uuid))

    def test_terminal_ack_removes_stream(self) -> None:
        """Acknowledging a terminal update with nothing behind it removes the task's stream and timers."""
        running, finished = status("t1"), status("t1", T.FINISHED)
        self.manager.update("fw", running)
        self.manager.update("fw", finished)
        self.flush()
        self.manager.acknowledge("fw", "t1", running.uuid)
        self.flush()
        self.assertEqual(self.manager.acknowledge("fw", "t1", finished.uuid), finished)
        self.assertFalse(self.manager.has_pending("fw", "t1"))
        self.assertEqual(list(self.manager.heads()), [])
        self.assertEqual(self.manager._streams, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nonterminal_ack_keeps_stream(self) -> None:
        """After a non-terminal ack the stream stays, so later updates of the task still deduplicate."""
        running = status("t1")
        self.manager.update("fw", running)
        self.flush()
        self.manager.acknowledge("fw", "t1", running.uuid)
        self.assertIn(("fw", "t1"), self.manager._streams)
        self.assertFalse(self.manager.update("fw", running))

    def test_nothing_sent_before_resume(self) -> None:
        """A new manager is paused until a master is there: updates queue without timers."""
        batches: list = []
        manager = StatusUpdateManager(self.clock, batches.append)
        update = status("t1")
        manager.update("fw", update)
        self.clock.advance(100)
        self.assertEqual(batches, [])
        manager.resume()
        self.flush()
        self.assertEqual(batches, [[("fw", update)]])
        manager.stop()

    def test_stop_cancels_everything(self) -> None:
        """stop() leaves no retry or flush timers behind."""
        self.manager.update("fw", status("t1"))
        self.manager.update("fw", status("t2"))
        self.manager.stop()
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])
