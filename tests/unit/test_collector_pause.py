"""A newly elected master holds the garbage collector back while its failover's agents re-register."""

from __future__ import annotations

from typing import Any

from mesostw import flags as flaglib
from mesostw.allocator.hierarchical import HierarchicalAllocator
from mesostw.master.collector import LIMIT, CollectorPause
from mesostw.master.flags import MASTER_FLAGS
from mesostw.master.master import Master
from mesostw.master.registry import RegistryState
from tests.helpers.clocktest import ClockTestCase
from tests.unit.test_master_recovery import AGENT_A, AGENT_B, RecordingRegistry, agent_info, registry_state


class FakeCollector:
    """The :mod:`gc` module's switch, recording every change."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.changes: list[bool] = []

    def isenabled(self) -> bool:
        return self.enabled

    def disable(self) -> None:
        self.enabled = False
        self.changes.append(False)

    def enable(self) -> None:
        self.enabled = True
        self.changes.append(True)


class CollectorPauseTests(ClockTestCase):
    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.collector = FakeCollector()
        self.pause = CollectorPause(self.clock, self.collector)
        self.addCleanup(self.pause.resume)

    def test_pause_until_resumed(self) -> None:
        """Paused, the collector is off (once, however often it is paused) until resumed; resuming again
        changes nothing."""
        self.pause.pause()
        self.pause.pause()
        self.assertEqual((self.collector.enabled, self.pause.paused), (False, True))
        self.pause.resume()
        self.pause.resume()
        self.assertEqual(self.collector.changes, [False, True])
        self.assertFalse(self.pause.paused)

    def test_limit(self) -> None:
        """A pause nobody ends ends after LIMIT seconds."""
        self.pause.pause()
        self.clock.advance(LIMIT - 0.5)
        self.assertFalse(self.collector.enabled)
        self.clock.advance(0.5)
        self.assertEqual(self.collector.changes, [False, True])
        self.assertFalse(self.pause.paused)

    def test_collector_off_already_is_left_off(self) -> None:
        """A collector that someone else turned off is neither paused nor turned on by this pause."""
        self.collector.enabled = False
        self.pause.pause()
        self.pause.resume()
        self.clock.advance(LIMIT)
        self.assertEqual((self.collector.changes, self.collector.enabled), ([], False))

    def test_no_collector(self) -> None:
        """Without a collector (a master sharing its process, as in tests), pausing does nothing."""
        pause = CollectorPause(self.clock)
        pause.pause()
        self.assertFalse(pause.paused)
        pause.resume()


class MasterCollectorTests(ClockTestCase):
    """What a master does with its collector through a failover."""

    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.collector = FakeCollector()
        config = flaglib.defaults(MASTER_FLAGS, hostname="127.0.0.1", agent_reregister_timeout=60.0)
        self.master = Master(config, HierarchicalAllocator(self.clock, randomize=False), self.clock, master_id="M2",
                             registry=RecordingRegistry(registry_state()), collector=self.collector)
        self.addCleanup(self.master.stop)

    def reregister(self, agent_id: str) -> Any:
        from tests.helpers.cluster import DirectAgentLink

        d = self.master.reregisterAgent(DirectAgentLink(None, self.clock), agent_info(agent_id, agent_id), [], [], [])
        self.clock.advance(0)
        return d

    def test_paused_from_election_until_every_agent_is_back(self) -> None:
        """Elected, the master pauses the collector while it reads the registry; recovered, it keeps it paused
        while agents of the registry are still to re-register, and resumes it once the last one is back."""
        self.master.electing()
        self.assertFalse(self.collector.enabled)
        self.master.recover(registry_state())
        self.assertFalse(self.collector.enabled)
        self.assertEqual(self.successResultOf(self.reregister(AGENT_A)).id, "M2")
        self.assertFalse(self.collector.enabled)
        self.successResultOf(self.reregister(AGENT_B))
        self.assertEqual(self.collector.changes, [False, True])

    def test_empty_registry_resumes_at_once(self) -> None:
        """A registry without agents: nobody comes back, the collector resumes as the master leads."""
        self.master.electing()
        self.master.recover(RegistryState())
        self.assertEqual(self.collector.changes, [False, True])

    def test_agents_that_never_come_back(self) -> None:
        """Agents of the registry that do not come back hold the collector off for LIMIT seconds at most (not
        the whole --agent_reregister_timeout)."""
        self.master.recover(registry_state())
        self.assertFalse(self.collector.enabled)
        self.clock.advance(LIMIT)
        self.assertEqual(self.collector.changes, [False, True])

    def test_stopping_resumes(self) -> None:
        """A master that stops while its collector is paused turns it on again."""
        self.master.electing()
        self.master.stop()
        self.assertEqual(self.collector.changes, [False, True])
