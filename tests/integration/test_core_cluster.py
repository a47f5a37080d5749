"""A master and two agents as real twistd processes, driven by a PB framework."""

from __future__ import annotations

import signal

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cluster import RecordingScheduler, command_task
from tests.helpers.processes import ProcessCluster, wait_for


class LaunchingScheduler(RecordingScheduler):
    """Launches its pending tasks on the first offers that fit them, spreading over agents.

    Tasks in ``forced`` are launched on the next offer whether they fit or not.
    """

    forced: list = []

    def resourceOffers(self, driver, offers):
        self.offers.extend(offers)
        for offer in offers:
            if self.forced:
                batch, self.forced = self.forced, []
                for candidate in batch:
                    candidate["agent_id"] = {"value": offer.agent_id}
                driver.launchTasks([offer.id], batch)
                continue
            batch = []
            available = offer.resources
            while self.pending:
                candidate = self.pending[0]
                from mesostw.model.resources import Resources

                needed = Resources.from_json(candidate["resources"])
                if not available.contains(needed):
                    break
                available = available - needed
                candidate["agent_id"] = {"value": offer.agent_id}
                batch.append(self.pending.pop(0))
            if batch:
                driver.launchTasks([offer.id], batch)
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 0.5})


class CoreClusterTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield ProcessCluster(self, agents=2).start()

    def framework(self, scheduler, **info):
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="root", name="integration", **info),
                                      self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        return driver

    def terminal(self, scheduler, task_ids):
        return wait_for(lambda: all(any(u.terminal for u in scheduler.updates if u.task_id == t) for t in task_ids),
                        60, what=f"terminal updates for {len(task_ids)} tasks")

    @defer.inlineCallbacks
    def test_twenty_tasks_finish_and_are_acknowledged(self):
        """Twenty command tasks over two agents all finish, and the master retires every one once acknowledged."""
        scheduler = LaunchingScheduler()
        ids = [f"task-{i}" for i in range(20)]
        scheduler.pending = [command_task(t, "true", "cpus:0.5;mem:32") for t in ids]
        self.framework(scheduler)
        yield self.terminal(scheduler, ids)
        self.assertEqual({t: scheduler.states(t)[-1] for t in ids}, {t: T.FINISHED for t in ids})
        agents_used = {u.agent_id for u in scheduler.updates}
        self.assertEqual(len(agents_used), 2)

        def retired(state):
            framework = state["frameworks"][0]
            return not framework["tasks"] and len(framework["completed_tasks"]) == 20

        state = yield wait_for(lambda: self.cluster.state().addCallback(lambda s: retired(s) and s), 30,
                               what="acknowledged tasks retired")
        self.assertEqual({t["state"] for t in state["frameworks"][0]["completed_tasks"]}, {T.FINISHED})

    @defer.inlineCallbacks
    def test_failing_command_fails_with_its_status(self):
        """A command exiting with 3 gives TASK_FAILED carrying the exit status."""
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("bad", "exit 3")]
        self.framework(scheduler)
        yield self.terminal(scheduler, ["bad"])
        final = [u for u in scheduler.updates if u.task_id == "bad"][-1]
        self.assertEqual(final.state, T.FAILED)
        self.assertIn("status 3", final.message)

    @defer.inlineCallbacks
    def test_kill_gives_task_killed(self):
        """Killing a running task ends it with TASK_KILLED."""
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("sleeper", "sleep 600")]
        driver = self.framework(scheduler)
        yield wait_for(lambda: T.RUNNING in scheduler.states("sleeper"), 30, what="TASK_RUNNING")
        driver.killTask("sleeper")
        yield self.terminal(scheduler, ["sleeper"])
        self.assertEqual(scheduler.states("sleeper")[-1], T.KILLED)

    @defer.inlineCallbacks
    def test_kill_escalates_to_sigkill_after_the_grace_period(self):
        """A command that ignores SIGTERM is killed with SIGKILL once the kill's grace period passes."""
        import time

        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("stubborn", "trap '' TERM; while :; do sleep 1; done")]
        driver = self.framework(scheduler)
        yield wait_for(lambda: T.RUNNING in scheduler.states("stubborn"), 30, what="TASK_RUNNING")
        started = time.monotonic()
        driver.killTask("stubborn", gracePeriod=1.0)
        yield self.terminal(scheduler, ["stubborn"])
        final = [u for u in scheduler.updates if u.task_id == "stubborn"][-1]
        self.assertEqual(final.state, T.KILLED)
        self.assertIn("SIGKILL", final.message)
        self.assertGreaterEqual(time.monotonic() - started, 1.0)

    @defer.inlineCallbacks
    def test_killing_an_agent_loses_its_tasks(self):
        """When an agent's process is killed, its running task is reported TASK_LOST."""
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("doomed", "sleep 600")]
        self.framework(scheduler)
        yield wait_for(lambda: T.RUNNING in scheduler.states("doomed"), 30, what="TASK_RUNNING")
        running = [u for u in scheduler.updates if u.task_id == "doomed"][-1]
        state = yield self.cluster.state()
        port = next(a["port"] for a in state["slaves"] if a["id"] == running.agent_id)
        victim = next(d for d in self.cluster.agents if f"--port={port}" in d.args)
        victim.kill(signal.SIGKILL)
        yield self.terminal(scheduler, ["doomed"])
        final = [u for u in scheduler.updates if u.task_id == "doomed"][-1]
        self.assertEqual(final.state, T.LOST)
        self.assertEqual(final.reason, T.REASON_AGENT_DISCONNECTED)

    @defer.inlineCallbacks
    def test_malformed_launch_is_refused_and_master_keeps_serving(self):
        """A launch with a bad task ID and one with too many resources get TASK_ERROR; the next task runs."""
        scheduler = LaunchingScheduler()
        no_command = command_task("no-command", "true")
        del no_command["command"]
        scheduler.forced = [command_task("bad/id", "true"), command_task("greedy", "true", "cpus:64;mem:32"),
                            no_command]
        driver = self.framework(scheduler)
        yield self.terminal(scheduler, ["bad/id", "greedy", "no-command"])
        for task_id, words in (("bad/id", "must not contain '/'"), ("greedy", "more resources"),
                               ("no-command", "exactly one of command and executor")):
            self.assertEqual(scheduler.states(task_id), [T.ERROR])
            error = [u for u in scheduler.updates if u.task_id == task_id][0]
            self.assertEqual(error.reason, T.REASON_TASK_INVALID)
            self.assertIn(words, error.message)
        driver._send({"type": "ACCEPT", "framework_id": {"value": scheduler.framework_id}, "accept": "nonsense"})
        yield wait_for(lambda: driver.refusals, 30, what="a refused call")
        self.assertIn("accept must be an object", driver.refusals[0])
        scheduler.pending = [command_task("after", "true")]
        driver.reviveOffers()
        yield self.terminal(scheduler, ["after"])
        self.assertEqual(scheduler.states("after")[-1], T.FINISHED)
