"""The master's health checks over a real PB link: an agent whose connection is gone is a missed ping, quietly.

Mesos's ``SlaveObserver`` counts a ping to a gone agent as a miss; here an agent's PB connection
breaking must do the same, and never log a traceback per round (``DeadReferenceError`` raised by
``callRemote`` on a dead broker).
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.logger import globalLogPublisher

from mesostw.agent.pb import AgentRemote
from mesostw.master.health import AgentHealth
from mesostw.master.pb import PBAgentLink
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.loopback import Catcher, PBLoopback, server_reference
from tests.unit.test_links import RecordingAgent


class HealthOverPBTests(ClockTestCase):
    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.agent = RecordingAgent()
        catcher = Catcher()
        self.loopback = PBLoopback(catcher, self.clock)
        remote = server_reference(self.loopback, catcher, AgentRemote(self.agent))  # type: ignore[arg-type]
        self.link = PBAgentLink(remote, self.clock)
        self.unreachable: list[str] = []
        self.health = AgentHealth(self.clock, 15.0, 5, self.unreachable.append)
        self.addCleanup(self.health.stop)
        self.errors: list[dict[str, Any]] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_failure") is not None or event.get("isError"):
                self.errors.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def rounds(self, count: int) -> None:
        for _ in range(count):
            self.clock.advance(15.0)
            self.loopback.settle()

    def test_disconnected_agent_is_missed_quietly(self) -> None:
        """After the agent's connection breaks (with messages still batched for it), every health round
        counts a miss and logs nothing; the fifth miss reports the agent unreachable."""
        self.health.watch("S1", self.link)
        self.loopback.settle()
        self.rounds(2)
        self.assertEqual(self.health.misses("S1"), 0)
        self.loopback.cut()
        self.link.killTask("F1", "t1")  # queued for a connection that is gone
        self.rounds(5)  # the first round finds the last ping answered; each later one a miss
        self.assertEqual(self.health.misses("S1"), 4)
        self.assertEqual(self.unreachable, [])
        self.rounds(1)
        self.assertEqual(self.unreachable, ["S1"])
        gc.collect()  # an unhandled failure in a Deferred is only logged when it is collected
        self.assertEqual(self.errors, [])
        self.assertEqual(self.flushLoggedErrors(), [])
