"""The ZooKeeper bridge's effect on the process: kazoo's I/O thread is not starved of the GIL by the reactor."""

from __future__ import annotations

import sys

from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from mesostw.zk.client import SWITCH_INTERVAL, ZooKeeper
from mesostw.zk.url import parse_zk_url


class SwitchIntervalTests(unittest.TestCase):
    def setUp(self) -> None:
        before = sys.getswitchinterval()
        self.addCleanup(sys.setswitchinterval, before)

    def test_a_session_shortens_the_wait_for_the_gil(self) -> None:
        """With Python's default 5 ms, every reply kazoo's thread waits for costs up to 5 ms of a busy reactor
        thread (a new leader's registry read of thousands of znodes tripled); a ZooKeeper session lowers it."""
        sys.setswitchinterval(0.005)
        ZooKeeper(MemoryReactorClock(), parse_zk_url("zk://127.0.0.1:2181/mesos"))
        self.assertAlmostEqual(sys.getswitchinterval(), SWITCH_INTERVAL)
        self.assertLess(SWITCH_INTERVAL, 0.005)

    def test_a_shorter_interval_is_kept(self) -> None:
        """A process that set a shorter interval keeps it."""
        sys.setswitchinterval(SWITCH_INTERVAL / 2)
        ZooKeeper(MemoryReactorClock(), parse_zk_url("zk://127.0.0.1:2181/mesos"))
        self.assertAlmostEqual(sys.getswitchinterval(), SWITCH_INTERVAL / 2)
