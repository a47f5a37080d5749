"""The test base that fails on timers left on a fake clock (tests/helpers/clocktest.py)."""

from __future__ import annotations

import unittest as pyunit

from twisted.internet import task
from twisted.trial import unittest

from tests.helpers.clocktest import ClockTestCase


def forgotten_timer() -> None:
    """A function a leaky test leaves scheduled."""


def problems(case: ClockTestCase) -> list[str]:
    """The reports of the test's failures and errors (trial reports a failing cleanup as an error)."""
    result = pyunit.TestResult()
    case.run(result)
    return [report for _, report in result.failures + result.errors]


class ClockTestCaseTests(unittest.SynchronousTestCase):
    def test_leftover_call_fails_and_is_named(self) -> None:
        """A delayed call left on a registered clock fails the test with the function's name and due time."""

        class Leaky(ClockTestCase):
            def test_leak(self) -> None:
                self.makeClock().callLater(5, forgotten_timer)

        [report] = problems(Leaky("test_leak"))
        self.assertIn("1 delayed call(s) left", report)
        self.assertIn("test_clocktest.forgotten_timer due at 5", report)

    def test_looping_call_is_named_by_its_function(self) -> None:
        """A LoopingCall left running is reported by the function it loops over."""

        class Looping(ClockTestCase):
            def test_loop(self) -> None:
                loop = task.LoopingCall(forgotten_timer)
                loop.clock = self.makeClock()
                loop.start(10, now=False)

        [report] = problems(Looping("test_loop"))
        self.assertIn("LoopingCall(tests.unit.test_clocktest.forgotten_timer)", report)

    def test_cleanups_run_before_the_check(self) -> None:
        """What a test registers after its clock (stopping a service) runs before the clock is checked."""

        class Tidy(ClockTestCase):
            def test_tidy(self) -> None:
                clock = self.makeClock()
                call = clock.callLater(5, forgotten_timer)
                self.addCleanup(call.cancel)

        self.assertEqual(problems(Tidy("test_tidy")), [])

    def test_cancelled_and_run_calls_are_fine(self) -> None:
        """Calls that ran or were cancelled leave nothing to report."""

        class Done(ClockTestCase):
            def test_done(self) -> None:
                clock = self.makeClock()
                clock.callLater(1, forgotten_timer)
                clock.callLater(2, forgotten_timer).cancel()
                clock.advance(1)

        self.assertEqual(problems(Done("test_done")), [])
