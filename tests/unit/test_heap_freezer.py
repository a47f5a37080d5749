"""A daemon master freezes the heap each full collection leaves, and thaws it now and then."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from twisted.internet import defer, task
from twisted.internet.testing import MemoryReactorClock

from mesostw.master.collector import THAW_EVERY, HeapFreezer
from mesostw.master.service import MasterService
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.probe import master_config, probe_plugin


class FakeCollector:
    """The :mod:`gc` module's callbacks, freeze and unfreeze, recording calls."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.calls: list[str] = []

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collected(self, generation: int) -> None:
        for callback in list(self.callbacks):
            callback("start", {"generation": generation})
            callback("stop", {"generation": generation, "collected": 0, "uncollectable": 0})


class HeapFreezerTests(ClockTestCase):
    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.collector = FakeCollector()
        self.freezer = HeapFreezer(self.clock, self.collector)
        self.freezer.start()
        self.addCleanup(self.freezer.stop)

    def test_freezes_after_a_full_collection_only(self) -> None:
        """Young collections freeze nothing; a full one freezes on the reactor's next turn (not inside the
        collector), once however many full collections came in that turn."""
        self.collector.collected(0)
        self.collector.collected(1)
        self.clock.advance(0)
        self.assertEqual(self.collector.calls, [])
        self.collector.collected(2)
        self.collector.collected(2)
        self.assertEqual(self.collector.calls, [])
        self.clock.advance(0)
        self.assertEqual(self.collector.calls, ["freeze"])
        self.collector.collected(2)
        self.clock.advance(0)
        self.assertEqual(self.collector.calls, ["freeze", "freeze"])

    def test_thaws_every_interval(self) -> None:
        """The frozen heap is given back to the collector every THAW_EVERY seconds."""
        self.clock.advance(THAW_EVERY - 1)
        self.assertEqual(self.collector.calls, [])
        self.clock.advance(1)
        self.assertEqual(self.collector.calls, ["unfreeze"])
        self.clock.advance(THAW_EVERY)
        self.assertEqual(self.collector.calls, ["unfreeze", "unfreeze"])

    def test_stop_thaws_and_stops_watching(self) -> None:
        """Stopped, the freezer thaws the heap, leaves the collector's callbacks as they were and schedules
        nothing more."""
        self.collector.collected(2)
        self.freezer.stop()
        self.assertEqual((self.collector.calls, self.collector.callbacks), (["unfreeze"], []))
        self.collector.collected(2)
        self.clock.advance(THAW_EVERY * 2)
        self.assertEqual(self.collector.calls, ["unfreeze"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class Node:
    """Something to make a reference cycle of."""

    def __init__(self) -> None:
        self.other: Node | None = None


class RealCollectorTests(ClockTestCase):
    def test_cycles_among_frozen_objects_are_collected_after_a_thaw(self) -> None:
        """With Python's own collector: what a full collection leaves is frozen (a cycle dropped after that
        survives full collections), and after a thaw the next full collection frees it."""
        clock = task.Clock()
        freezer = HeapFreezer(clock, gc, thaw_every=60)
        self.addCleanup(freezer.stop)  # nothing of this test stays frozen for the rest of the suite
        first, second = Node(), Node()
        first.other, second.other = second, first
        alive = weakref.ref(first)
        freezer.start()
        gc.collect()
        clock.advance(0)
        self.assertGreater(gc.get_freeze_count(), 0)
        del first, second
        gc.collect()
        self.assertIsNotNone(alive(), "a frozen cycle is not collected")
        clock.advance(60)
        self.assertEqual(gc.get_freeze_count(), 0)
        gc.collect()
        self.assertIsNone(alive())


class DaemonCollector(FakeCollector):
    """What a daemon master is given: the collector's switch as well."""

    def isenabled(self) -> bool:
        return True

    def disable(self) -> None:
        self.calls.append("disable")

    def enable(self) -> None:
        self.calls.append("enable")


#: the framework ``master_config`` hosts
PLUGINS = {"probe": probe_plugin()}


class MasterServiceTests(ClockTestCase):
    def test_a_master_given_the_collector_freezes_while_it_runs(self) -> None:
        """A master service given the collector (as twistd's is) watches it from start to stop and thaws
        the heap when it stops; one given none (as in tests sharing their process) has no freezer."""
        self.assertIsNone(MasterService(master_config(), reactor=MemoryReactorClock(), plugins=PLUGINS).freezer)
        collector = DaemonCollector()
        service = MasterService(master_config(), reactor=MemoryReactorClock(), plugins=PLUGINS,
                                collector=collector)
        service.startService()
        self.assertEqual(len(collector.callbacks), 1)
        collector.collected(2)
        service.reactor.advance(0)
        self.assertIn("freeze", collector.calls)
        self.successResultOf(defer.maybeDeferred(service.stopService))
        self.assertEqual((collector.callbacks, collector.calls[-1:]), ([], ["unfreeze"]))
