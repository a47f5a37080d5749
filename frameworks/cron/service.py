"""The cron framework's Twisted shell: leadership, recovery, the scheduler driver, time and effects.

:class:`CronService` is what ``makeService`` returns. On start it waits until its host leads, reads its
state from the host's store, gives it to the planner, and registers with the master through the
host's driver (explicit acknowledgements, so that a task's end is acknowledged only once written).
From then on every event (a timer, offers, a status update, an API call) goes to the planner, and the
planner's effects come back here to be carried out.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from frameworks.cron import effects as fx
from frameworks.cron.api import CronAPI
from frameworks.cron.effects import Effects
from frameworks.cron.jobs import Defaults
from frameworks.cron.metrics import Metrics
from frameworks.cron.notify import WebhookNotifier
from frameworks.cron.planner import Planner, Settings
from frameworks.cron.records import FRAMEWORK_ID, JOBS, RUNS
from frameworks.cron.writer import StoreWriter
from mesostw.interfaces import IScheduler
from mesostw.model import task as T
from mesostw.model.info import Filters, FrameworkInfo, MasterInfo
from mesostw.model.task import Offer, TaskStatus
from mesostw.store import Put

log = Logger()

#: How long stopping waits for writes already made to reach the store.
DRAIN_SECONDS = 5.0


def settings_from(config: Any) -> Settings:
    """The planner's settings from the plugin's flags (Chronos's names and units)."""
    return Settings(
        defaults=Defaults(cpus=config.mesos_task_cpu, mem=config.mesos_task_mem, disk=config.mesos_task_disk,
                          user=config.user, epsilon=f"PT{int(config.task_epsilon)}S"),
        role=config.mesos_role,
        retry_delay_ms=int(config.failure_retry),
        disable_after_failures=int(config.disable_after_failures),
        lookahead_ms=int(config.leader_max_idle_time),
        decline_seconds=config.decline_offer_duration / 1000.0,
        history_limit=int(config.job_history_limit),
        reconciliation_interval_ms=int(config.reconciliation_interval) * 1000,
        cluster_name=config.cluster_name,
    )


@defer.inlineCallbacks
def read_state(store: Any) -> Any:
    """Fires with ``(framework ID or None, {job name: record JSON}, {run key: run JSON})`` from ``store``."""
    raw_id = yield store.get(FRAMEWORK_ID)
    jobs, runs = {}, {}
    for name in (yield store.children(JOBS)):
        raw = yield store.get(f"{JOBS}/{name}")
        if raw is not None:
            jobs[name] = json.loads(raw)
    for key in (yield store.children(RUNS)):
        raw = yield store.get(f"{RUNS}/{key}")
        if raw is not None:
            runs[key] = json.loads(raw)
    return (raw_id.decode() if raw_id else None), jobs, runs


class CronService(service.MultiService):
    """The framework: a planner driven by the host's reactor, store, driver and router."""

    def __init__(self, host: Any, config: Any):
        super().__init__()
        self.host, self.config, self.reactor = host, config, host.reactor
        self.planner = Planner(settings_from(config))
        self.metrics = Metrics(self.planner)
        self.writer = StoreWriter(host.store, host.reactor, self._fenced)
        self.notifier = WebhookNotifier(host.reactor, config.http_notification_url,
                                        config.http_notification_credentials)
        self.scheduler = CronScheduler(self)
        self.driver: Any = None
        self.framework_id: str | None = None
        self.ready = False
        self.deposed = False
        self._timer: Any = None
        self._timer_at: float | None = None
        self.whenReady: defer.Deferred = defer.Deferred()
        self.api = CronAPI(self)
        self.api.install(host.router)

    # -- lifecycle -----------------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        d = self.host.whenLeading()
        d.addCallback(lambda _: self._lead())
        d.addErrback(self._could_not_start)

    def _could_not_start(self, failure: Failure) -> None:
        log.failure("The cron framework could not take the lead", failure)
        if not self.whenReady.called:
            self.whenReady.errback(failure)

    @defer.inlineCallbacks
    def _lead(self) -> Any:
        if not self.running:
            return
        framework_id, jobs, runs = yield read_state(self.host.store)
        if not self.running:
            return
        self.framework_id = framework_id
        self.perform(self.planner.recover(jobs, runs, self.now()))
        for problem in self.planner.problems:
            log.error("Recovery: {problem}", problem=problem)
        log.info("Recovered {jobs} jobs and {runs} runs; framework {id}", jobs=len(self.planner.jobs),
                 runs=len(self.planner.runs), id=self.framework_id or "(new)")
        config = self.config
        info = FrameworkInfo(user=config.user, name=config.mesos_framework_name, id=self.framework_id,
                             failover_timeout=float(config.failover_timeout), checkpoint=config.mesos_checkpoint,
                             role=config.mesos_role)
        self.driver = self.host.driver(self.scheduler, info, implicit_acknowledgements=False)
        self.ready = True
        self.driver.setServiceParent(self)
        self._wake()
        self.whenReady.callback(None)

    def stopService(self) -> defer.Deferred:
        """Stop scheduling, let the writes already made reach the store (for at most ``DRAIN_SECONDS``),
        then stop the driver (the master keeps the framework for its failover timeout)."""
        self._cancel_timer()
        self.ready = False
        drained = self.writer.write([]) if not self.writer.dead else defer.succeed(None)
        drained.addTimeout(DRAIN_SECONDS, self.reactor)

        def stop(_: Any) -> defer.Deferred:
            self.writer.cancel()
            return defer.maybeDeferred(super(CronService, self).stopService)

        return drained.addBoth(stop)

    def _fenced(self, failure: Failure) -> None:
        """Another instance leads now: stop acting at once (the host ends this process)."""
        log.error("The store refused a write: another instance leads; the cron framework stops acting")
        self.deposed, self.ready = True, False
        self._cancel_timer()
        if self.driver is not None:
            self.driver.abort()

    # -- time ----------------------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.reactor.seconds() * 1000)

    def _wake(self) -> None:
        """Make sure a timer fires when the planner next has something to do."""
        if not self.ready:
            return
        wake = self.planner.next_wakeup()
        if wake is None:
            return
        at = wake / 1000.0
        if self._timer is not None and self._timer.active() and self._timer_at is not None and self._timer_at <= at:
            return
        self._cancel_timer()
        self._timer_at = at
        self._timer = self.reactor.callLater(max(0.0, at - self.reactor.seconds()), self._tick)

    def _tick(self) -> None:
        self._timer = self._timer_at = None
        self.perform(self.planner.tick(self.now()))

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._timer_at = None

    # -- effects -------------------------------------------------------------------------------------

    def apply(self, effects: Effects) -> defer.Deferred:
        """Carry out effects: the immediate actions now, the rest once the writes are durable."""
        for action in effects.now:
            self._act(action)
        d = self.writer.write(effects.ops)

        def durable(_: Any) -> None:
            for action in effects.after:
                self._act(action)

        d.addCallback(durable)
        self._wake()
        return d

    def perform(self, effects: Effects) -> None:
        """:meth:`apply` for events nobody waits on: a refused write is logged (and ends acting if fenced)."""
        self.apply(effects).addErrback(self._not_written)

    def _not_written(self, failure: Failure) -> None:
        if not self.deposed:
            log.failure("The cron framework's effects could not be written", failure)

    def _act(self, action: fx.Action) -> None:
        if isinstance(action, fx.Recorded):
            self.perform(self.planner.recorded(action.keys, self.now()))
            return
        if isinstance(action, fx.Notify):
            self.notifier.notify(action)
            return
        driver = self.driver
        if driver is None or self.deposed:
            return
        if isinstance(action, fx.Launch):
            driver.launchTasks(list(action.offer_ids), list(action.tasks))
        elif isinstance(action, fx.Decline):
            driver.declineOffer(list(action.offer_ids), Filters(action.refuse_seconds))
        elif isinstance(action, fx.Kill):
            driver.killTask(action.task_id, action.agent_id)
        elif isinstance(action, fx.Acknowledge):
            driver.acknowledgeStatusUpdate(action.status)
        elif isinstance(action, fx.Revive):
            driver.reviveOffers()
        elif isinstance(action, fx.Suppress):
            driver.suppressOffers()
        elif isinstance(action, fx.Reconcile):
            driver.reconcileTasks([TaskStatus(task_id, T.STAGING, agent_id=agent_id) if agent_id else task_id
                                   for task_id, agent_id in action.tasks()])

    # -- the driver's events -------------------------------------------------------------------------

    def subscribed(self, framework_id: str) -> None:
        if framework_id != self.framework_id:
            self.framework_id = framework_id
            self.writer.write([Put(FRAMEWORK_ID, framework_id.encode())]).addErrback(self._not_written)
        self.perform(self.planner.registered(self.now()))


@implementer(IScheduler)
class CronScheduler:
    """The Mesos callbacks, handed to the service and its planner."""

    def __init__(self, cron: CronService):
        self.cron = cron

    def registered(self, driver: Any, frameworkId: str, masterInfo: MasterInfo) -> None:
        log.info("Registered as framework {id} with master {master}", id=frameworkId, master=masterInfo.endpoint)
        self.cron.subscribed(frameworkId)

    def reregistered(self, driver: Any, masterInfo: MasterInfo) -> None:
        log.info("Registered again with master {master}", master=masterInfo.endpoint)
        self.cron.subscribed(driver.framework_id)

    def disconnected(self, driver: Any) -> None:
        log.warn("Disconnected from the master")

    def resourceOffers(self, driver: Any, offers: list[Offer]) -> None:
        if self.cron.ready:
            try:
                self.cron.perform(self.cron.planner.offers(offers, self.cron.now()))
                return
            except Exception:
                log.failure("Offers could not be used")
        for offer in offers:
            driver.declineOffer(offer.id)

    def offerRescinded(self, driver: Any, offerId: str) -> None:
        pass

    def statusUpdate(self, driver: Any, status: TaskStatus) -> None:
        if self.cron.ready:
            self.cron.perform(self.cron.planner.status(status, self.cron.now()))

    def frameworkMessage(self, driver: Any, executorId: str, agentId: str, data: bytes) -> None:
        pass

    def slaveLost(self, driver: Any, agentId: str) -> None:
        log.warn("Agent {agent} lost", agent=agentId)

    def executorLost(self, driver: Any, executorId: str, agentId: str, status: Any) -> None:
        pass

    def error(self, driver: Any, message: str) -> None:
        log.error("The master refused the cron framework: {message}", message=message)
