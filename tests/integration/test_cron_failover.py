"""Exactly once per slot across failovers, on real processes and a real ZooKeeper.

A burst of due jobs (every slot a few hundred milliseconds from the next) is under way when the
process running the framework is killed with SIGKILL: a standalone ``mesos-cron`` leader (its standby
takes over as the same framework), or the leading master hosting it (another master is elected and
runs the framework from the state the first one left in ZooKeeper). Afterwards every slot has been
run exactly once: one executor sandbox on the agents and one success in the framework's history per
slot, none missing, none duplicated, none missed.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers.cron_processes import iso, job, now_ms, post, slot, slots_in_sandboxes
from tests.helpers.processes import Daemon, ProcessCluster, free_port, get_json, wait_for
from tests.helpers.zookeeper import AVAILABLE, ZooKeeperEnsemble

if not AVAILABLE:
    raise RuntimeError("ZooKeeper is not installed: `make test` installs Debian's zookeeper package")

#: The burst: JOBS jobs, each with two slots PERIOD_S apart, their first slots SPACING_MS apart.
JOBS, SPACING_MS, PERIOD_S = 24, 250, 7
#: Seconds into the burst at which the framework's process is killed.
KILL_AFTER_S = 3.5
SESSION = "2secs"


def burst(start: int) -> tuple[list[dict[str, Any]], set[tuple[str, int]]]:
    """The jobs of a burst whose first slot is at ``start`` (ms), and every (job, due) slot it holds."""
    jobs, slots = [], set()
    for n in range(JOBS):
        first = start + n * SPACING_MS
        name = f"burst-{n:02d}"
        jobs.append(job(name, f"R2/{iso(first)}/PT{PERIOD_S}S", command="sleep 0.5"))
        slots |= {(name, first), (name, first + PERIOD_S * 1000)}
    return jobs, slots


@defer.inlineCallbacks
def mid_burst(start: int, base: str) -> Any:
    """Fires KILL_AFTER_S into the burst starting at ``start`` (ms), once some slot has reached an agent
    (however loaded the machine), with the slots in the sandboxes below ``base`` then."""
    when = start + int(KILL_AFTER_S * 1000)
    yield wait_for(lambda: now_ms() >= when, (when - now_ms()) / 1000 + 5, interval=0.02, what="the burst")
    return (yield wait_for(lambda: slots_in_sandboxes(base), 30, interval=0.05, what="a slot to run"))


class ExactlyOnce:
    """The checks both failover tests end with."""

    @defer.inlineCallbacks
    def check_every_slot_ran_once(self: Any, address: Any, base: str, slots: set[tuple[str, int]]) -> Any:
        """Through the API ``address()`` finds (it may move): every slot succeeded once; then in the
        sandboxes below ``base``: every slot reached an agent exactly once."""
        @defer.inlineCallbacks
        def settled() -> Any:
            jobs = yield get_json(f"http://{(yield address())}/v1/scheduler/jobs")
            done = sum(j["successCount"] + j["errorCount"] + j["missedCount"] for j in jobs)
            return jobs if done >= len(slots) else None

        jobs = yield wait_for(settled, 120, interval=0.5, what="an outcome for every slot")
        self.assertEqual({j["name"]: (j["successCount"], j["errorCount"], j["missedCount"]) for j in jobs},
                         {f"burst-{n:02d}": (2, 0, 0) for n in range(JOBS)})
        succeeded: list[tuple[str, int] | None] = []
        for name in sorted({name for name, _ in slots}):
            history = yield get_json(f"http://{(yield address())}/v1/scheduler/job/history/{name}")
            succeeded += [slot(r["taskId"]) for r in history["runs"] if r["status"] == "success"]
        self.assertEqual(sorted(succeeded, key=str), sorted(slots, key=str), "one success per slot")
        ran = slots_in_sandboxes(base)
        self.assertEqual(set(ran), slots, "a task of every slot, and of nothing else, reached an agent")
        self.assertEqual({key: runs for key, runs in ran.items() if runs != 1}, {}, "no slot ran twice")


class FrameworkFailoverTests(ExactlyOnce, unittest.TestCase):
    """Two ``mesos-cron`` instances electing their leader in ZooKeeper, a master and two agents."""

    timeout = 240

    def instance(self, cluster: ProcessCluster, index: int, zk: str) -> tuple[Daemon, str]:
        port = free_port()
        daemon = Daemon("mesos-cron", [f"--master={cluster.master_address}", f"--http_port={port}", f"--zk={zk}",
                                       f"--zk_session_timeout={SESSION}", "--hostname=127.0.0.1"],
                        os.path.join(cluster.base, f"cron{index}.log"))
        cluster.agents.append(daemon)  # stopped with the cluster, by PID
        return daemon.start(), f"127.0.0.1:{port}"

    @defer.inlineCallbacks
    def test_killing_the_leading_instance_during_a_burst_runs_every_slot_once(self) -> Any:
        """SIGKILL to the leader a few seconds into a burst: the standby takes over as the same framework
        and every slot runs exactly once, on time or late, never twice and never missed."""
        ensemble = ZooKeeperEnsemble(1)
        self.addCleanup(ensemble.stop)
        yield ensemble.start()
        cluster = ProcessCluster(self, agents=2)
        yield cluster.start()
        zk = ensemble.url("/mesostw/cron")
        first, second = self.instance(cluster, 1, zk), self.instance(cluster, 2, zk)
        leading = yield wait_for(lambda: get_json(f"http://{first[1]}/v1/scheduler/leader").addCallback(
            lambda body: body["leader"]), 60, what="an elected instance")
        (leader, leader_address), (standby, standby_address) = (first, second) if leading == first[1] else (second,
                                                                                                              first)
        self.assertEqual(leading, leader_address)
        yield wait_for(lambda: get_json(f"http://{standby_address}/v1/scheduler/jobs").addCallback(lambda j: j == []),
                       60, what="the leader to be ready, through the standby")
        state = yield cluster.state()
        [framework_id] = [f["id"] for f in state["frameworks"]]

        start = now_ms() + 6000
        jobs, slots = burst(start)
        for body in jobs:
            yield post(standby_address, body)  # forwarded to the leader
        before = yield mid_burst(start, cluster.base)
        leader.kill(signal.SIGKILL)
        self.assertTrue(0 < len(before) < len(slots), f"killed mid-burst ({len(before)} of {len(slots)} slots ran)")

        def standby_leads() -> defer.Deferred:
            return get_json(f"http://{standby_address}/v1/scheduler/leader").addCallback(
                lambda body: body["leader"] == standby_address)

        yield wait_for(standby_leads, 60, what="the standby to take over")
        yield self.check_every_slot_ran_once(lambda: defer.succeed(standby_address), cluster.base, slots)
        state = yield cluster.state()
        self.assertEqual([(f["id"], f["active"]) for f in state["frameworks"]], [(framework_id, True)])
        self.assertIn("Elected as the leading instance", standby.log())


class MasterFailoverTests(ExactlyOnce, unittest.TestCase):
    """Three masters on ZooKeeper, each hosting the framework while it leads, and two agents."""

    timeout = 300

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.ensemble = ZooKeeperEnsemble(1)
        self.addCleanup(self.ensemble.stop)
        yield self.ensemble.start()
        self.cluster = ProcessCluster(self, agents=0)  # its directory and cleanup; the daemons are below
        self.masters: dict[int, tuple[Daemon, int]] = {}

    def start_master(self) -> None:
        port, api = free_port(), free_port()
        self.masters[port] = (Daemon("mesos-master", [
            f"--port={port}", f"--zk={self.ensemble.url('/mesos')}", "--quorum=2", f"--zk_session_timeout={SESSION}",
            "--frameworks=cron", f"--cron_http_port={api}"], os.path.join(self.cluster.base, f"master-{port}.log")
        ).start(), api)
        self.cluster.agents.append(self.masters[port][0])

    def start_agent(self, index: int) -> None:
        self.cluster.agents.append(Daemon("mesos-slave", [
            f"--master={self.ensemble.url('/mesos')}", f"--port={free_port()}",
            f"--work_dir={os.path.join(self.cluster.base, f'agent{index}')}", "--resources=cpus:4;mem:4096;disk:4096",
            f"--zk_session_timeout={SESSION}"], os.path.join(self.cluster.base, f"agent{index}.log")).start())

    @defer.inlineCallbacks
    def leader(self) -> Any:
        """The leading master's port (None while no live master says it is elected)."""
        for port, (daemon, _) in self.masters.items():
            if not daemon.alive():
                continue
            try:
                metrics = yield get_json(f"http://127.0.0.1:{port}/metrics/snapshot")
            except Exception:  # noqa: BLE001 - a master that does not answer is not the leader
                continue
            if metrics["master/elected"] == 1.0:
                return port
        return None

    @defer.inlineCallbacks
    def cron_address(self) -> Any:
        """The API of the framework on the leading master."""
        port = yield wait_for(self.leader, 60, interval=0.1, what="an elected master")
        return f"127.0.0.1:{self.masters[port][1]}"

    @defer.inlineCallbacks
    def test_killing_the_leading_master_during_a_burst_runs_every_slot_once(self) -> Any:
        """SIGKILL to the leading master (and the framework in it) a few seconds into a burst: the next
        master recovers the framework's state from ZooKeeper, and every slot runs exactly once."""
        for _ in range(3):
            self.start_master()
        first = yield wait_for(self.leader, 60, interval=0.1, what="an elected master")
        for index in range(2):
            self.start_agent(index)
        yield wait_for(lambda: get_json(f"http://127.0.0.1:{first}/master/state").addCallback(
            lambda s: s["activated_slaves"] == 2), 60, what="two agents on the leader")
        address = f"127.0.0.1:{self.masters[first][1]}"
        yield wait_for(lambda: get_json(f"http://{address}/v1/scheduler/jobs").addCallback(lambda j: j == []), 60,
                       what="the hosted framework to lead")
        [framework_id] = [f["id"] for f in (yield get_json(f"http://127.0.0.1:{first}/master/state"))["frameworks"]]

        start = now_ms() + 6000
        jobs, slots = burst(start)
        for body in jobs:
            yield post(address, body)
        before = yield mid_burst(start, self.cluster.base)
        self.masters[first][0].kill(signal.SIGKILL)
        killed_at = time.monotonic()
        self.assertTrue(0 < len(before) < len(slots), f"killed mid-burst ({len(before)} of {len(slots)} slots ran)")

        second = yield wait_for(self.leader, 60, interval=0.1, what="another elected master")
        self.assertNotEqual(second, first)
        yield self.check_every_slot_ran_once(self.cron_address, self.cluster.base, slots)
        state = yield get_json(f"http://127.0.0.1:{second}/master/state")
        self.assertEqual([(f["id"], f["active"]) for f in state["frameworks"]], [(framework_id, True)])
        self.assertLess(time.monotonic() - killed_at, 120)
