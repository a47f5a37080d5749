"""A trial test case that fails when a fake clock still has timers once the test is over.

Trial fails a test that leaves delayed calls on the real reactor; code driven by a
:class:`twisted.internet.task.Clock` gets no such check, yet a timer left behind there is the
same bug (a service that does not cancel its timers when it stops). :class:`ClockTestCase`
checks every clock a test registers with :meth:`ClockTestCase.useClock`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet import task
from twisted.internet.base import DelayedCall
from twisted.trial import unittest

C = TypeVar("C", bound=task.Clock)


def describe(call: DelayedCall) -> str:
    """What a delayed call will run, for people: ``module.function`` (a lambda with its line), and when."""
    func: Any = call.func
    loop = func if isinstance(func, task.LoopingCall) else getattr(func, "__self__", None)
    if isinstance(loop, task.LoopingCall):
        return f"LoopingCall({name_of(loop.f)}) due at {call.getTime()}"
    return f"{name_of(func)} due at {call.getTime()}"


def name_of(func: Any) -> str:
    func = getattr(func, "func", func)  # functools.partial
    qualname = getattr(func, "__qualname__", None)
    if qualname is None:
        return repr(func)
    name = f"{getattr(func, '__module__', '?')}.{qualname}"
    code = getattr(func, "__code__", None)
    if "<lambda>" in qualname and code is not None:
        name += f" ({code.co_filename}:{code.co_firstlineno})"
    return name


def pending(clock: task.Clock) -> list[DelayedCall]:
    """The delayed calls still to run on ``clock``."""
    return [call for call in clock.getDelayedCalls() if call.active()]


class ClockTestCase(unittest.TestCase):
    """A trial TestCase whose clocks must be idle when the test and its cleanups are done.

    :meth:`useClock` registers a clock (any :class:`task.Clock`, such as a ``MemoryReactorClock``).
    The check runs as a cleanup registered at that moment, so it runs after every cleanup registered
    later (cleanups run last-in first-out): register the clock first, then whatever stops the code
    that uses it (``self.addCleanup(cluster.stop)``).
    """

    def useClock(self, clock: C) -> C:
        """Check at the end of the test that ``clock`` has no delayed calls left; returns ``clock``."""
        self.addCleanup(self.assertClockIdle, clock)
        return clock

    def makeClock(self) -> task.Clock:
        """A new :class:`task.Clock`, checked as :meth:`useClock` does."""
        return self.useClock(task.Clock())

    def assertClockIdle(self, clock: task.Clock) -> None:
        """Fail, naming them, if ``clock`` still has delayed calls."""
        left = pending(clock)
        if left:
            self.fail(f"{len(left)} delayed call(s) left on the clock at {clock.seconds()}: "
                      + "; ".join(describe(call) for call in left))
