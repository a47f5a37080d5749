"""The PB executor driver's timekeeping runs on its reactor's clock: recovery timeouts and update timestamps."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from mesostw.executor.driver import Executor, ExecutorDriver
from mesostw.model import task as T
from mesostw.model.task import TaskStatus
from tests.helpers.clocktest import ClockTestCase

ENVIRONMENT = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:5051", "MESOS_FRAMEWORK_ID": "F1", "MESOS_EXECUTOR_ID": "E1",
               "MESOS_CHECKPOINT": "1", "MESOS_RECOVERY_TIMEOUT": "10secs"}


class DisconnectionCounter(Executor):
    def __init__(self) -> None:
        self.disconnections = 0

    def disconnected(self, driver: ExecutorDriver) -> None:
        self.disconnections += 1


class ExecutorDriverClockTests(ClockTestCase):
    def setUp(self) -> None:
        self.reactor = self.useClock(MemoryReactorClock())
        self.reactor.advance(1000)
        self.executor = DisconnectionCounter()

    def driver(self, **environment: str) -> ExecutorDriver:
        return ExecutorDriver(self.executor, {**ENVIRONMENT, **environment}, reactor=self.reactor)

    def test_checkpointing_executor_waits_for_the_recovery_timeout(self) -> None:
        """Losing the agent again within MESOS_RECOVERY_TIMEOUT (on the reactor's clock) keeps the executor;
        losing it after that long stops it."""
        driver = self.driver()
        driver._lost()
        self.reactor.advance(9)
        driver._lost()
        self.assertFalse(driver.stopped.called)
        self.reactor.advance(2)
        driver._lost()
        self.assertTrue(driver.stopped.called)
        self.assertEqual(self.executor.disconnections, 3)

    def test_executor_without_checkpointing_stops_at_once(self) -> None:
        """Without checkpointing, the first lost connection ends the executor."""
        driver = self.driver(MESOS_CHECKPOINT="0")
        driver._lost()
        self.assertTrue(driver.stopped.called)

    def test_updates_are_stamped_by_the_reactor(self) -> None:
        """A status update carries the reactor's time, a UUID and the executor's identity."""
        driver = self.driver()
        driver.sendStatusUpdate(TaskStatus("t1", T.RUNNING))
        [status] = driver.unacked_updates.values()
        self.assertEqual((status.timestamp, status.executor_id, status.source), (1000.0, "E1", T.SOURCE_EXECUTOR))
        self.assertIsNotNone(status.uuid)
