"""Master failover at scale: three masters on a real ZooKeeper, many simulated agents, kill -9 the leader.

Three ``mesos-master`` processes contend through ZooKeeper (``--quorum=2``, ``--zk_session_timeout``);
``--agents`` simulated agents (:mod:`bench.simagents`: the agents' real PB link and reconnection, in
``--processes`` processes following the leader through ZooKeeper) and a framework on the real PB
scheduler driver, which launches ``--tasks-per-agent`` tasks on every agent. Once every task runs,
the leader is killed with SIGKILL; from that instant:

* ``elect_s``: until another master says it is elected (its ``/metrics/snapshot``);
* ``agents_back_s``: until the new leader has every agent active again (re-registered with its tasks);
* ``frameworks_back_s``: until the framework has re-subscribed and a reconciliation has answered
  TASK_RUNNING for every task (an implicit reconciliation, repeated until all agents are back);
* ``lost``: tasks that are not running at the end (any other state the framework heard of, or missing
  from the new leader's state).

The ZooKeeper session of the dead leader has to expire before anyone else is elected, so the floor is
``session_timeout_s``. Then the new leader is stopped gracefully (SIGTERM); from that instant:

* ``graceful_s``, ``graceful_agents_s``, ``graceful_frameworks_s``: until the third master says it is
  elected, has every agent active again, and the framework has re-subscribed and reconciled every task,
  as this process sees them (by polling; it is also the framework, whose reconciliation keeps it busy);
* ``handover_s``, ``handover_agents_s``, ``handover_frameworks_s``: until the third master leads (its
  ``elected_time``: the registry is read), the last agent re-registered and the framework re-subscribed,
  as that master recorded them in its ``/master/state``;
* ``handover_cpu_s``: the CPU time the third master spent from the SIGTERM until every agent was back
  (less sensitive than the times to what else runs on the machine), and the same for the simulated
  agents, the ZooKeeper servers and this process (``handover_simagents_cpu_s``, ...); ``load``: the
  machine's load average then.

    python bench/failover.py --agents 1000 --tasks-per-agent 10
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from mesostw.model import task as T  # noqa: E402
from mesostw.model.info import FrameworkInfo  # noqa: E402
from mesostw.model.resources import Resources  # noqa: E402
from mesostw.scheduler.driver import Scheduler  # noqa: E402
from mesostw.scheduler.pb import MesosSchedulerDriver  # noqa: E402
from tests.helpers.processes import Daemon, environment, free_port, get_json, wait_for  # noqa: E402
from tests.helpers.zookeeper import ZooKeeperEnsemble  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = Resources.parse("cpus:0.01;mem:8")


class Framework(Scheduler):
    """Launches ``per_agent`` tasks on every agent offered; tracks every task's latest state, and what a
    reconciliation started at :attr:`reconciling` has answered."""

    def __init__(self, per_agent: int):
        self.per_agent = per_agent
        self.launched_on: set[str] = set()
        self.states: dict[str, str] = {}
        self.reregistered_at: float | None = None
        self.reconciling: float | None = None
        self.reconciled: set[str] = set()
        self.not_running: dict[str, str] = {}

    def resourceOffers(self, driver, offers):
        for offer in offers:
            if offer.agent_id in self.launched_on:
                driver.declineOffer(offer.id, {"refuse_seconds": 3600})
                continue
            self.launched_on.add(offer.agent_id)
            batch = []
            for number in range(self.per_agent):
                task_id = f"{offer.agent_id}-{number}"
                batch.append({"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": offer.agent_id},
                              "resources": TASK.to_json(), "command": {"value": "sleep 3600"}})
            driver.launchTasks([offer.id], batch, {"refuse_seconds": 3600})

    def reregistered(self, driver, masterInfo):
        self.reregistered_at = time.monotonic()
        self.reconcile(driver)

    def reconcile(self, driver):
        self.reconciling = time.monotonic()
        self.reconciled = set()
        driver.reconcileTasks([])

    def statusUpdate(self, driver, status):
        self.states[status.task_id] = status.state
        if status.state != T.RUNNING:
            self.not_running[status.task_id] = status.state
        else:
            self.not_running.pop(status.task_id, None)
        if self.reconciling is not None and status.reason == T.REASON_RECONCILIATION and status.state == T.RUNNING:
            self.reconciled.add(status.task_id)

    def running(self) -> int:
        return sum(1 for state in self.states.values() if state == T.RUNNING)


class Bench:
    def __init__(self, args):
        self.args = args
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="mesostw-bench-failover-"))
        self.zk = ZooKeeperEnsemble(args.zookeepers)
        self.masters: dict[int, Daemon] = {}
        self.agents: list[subprocess.Popen] = []
        self.logs: list = []

    @property
    def url(self) -> str:
        return self.zk.url("/mesos")

    def start_master(self) -> None:
        port = free_port()
        session = self.args.session_timeout
        self.masters[port] = Daemon("mesos-master", [
            f"--port={port}", f"--zk={self.url}", "--quorum=2", f"--zk_session_timeout={session:g}secs",
            "--allocation_interval=0.5secs"],
            os.path.join(self.base, f"master-{port}.log")).start()

    def start_agents(self) -> None:
        per_process = -(-self.args.agents // self.args.processes)
        left = self.args.agents
        for index in range(self.args.processes):
            count = min(per_process, left)
            left -= count
            if count <= 0:
                break
            log = open(os.path.join(self.base, f"agents-{index}.log"), "w")
            self.logs.append(log)
            self.agents.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "simagents.py"), f"--master={self.url}", f"--count={count}",
                 f"--index={index}", f"--session_timeout={self.args.session_timeout:g}", "--backoff=0.5",
                 f"--spread={self.args.spread:g}", "--report=5", f"--resources=cpus:{self.args.tasks_per_agent};"
                 f"mem:{8 * self.args.tasks_per_agent + 1024};disk:1024"],
                stdout=log, stderr=subprocess.STDOUT, env=environment()))

    @defer.inlineCallbacks
    def snapshot(self, port: int):
        return (yield get_json(f"http://127.0.0.1:{port}/metrics/snapshot"))

    @defer.inlineCallbacks
    def leader(self, exclude=frozenset()):
        """The port of the master that says it is elected (asked all at once: one busy master does not
        delay the answer of another)."""
        ports = [port for port, daemon in self.masters.items() if port not in exclude and daemon.alive()]
        answers = yield defer.DeferredList([self.snapshot(port) for port in ports], consumeErrors=True)
        for port, (ok, metrics) in zip(ports, answers, strict=True):
            if ok and metrics.get("master/elected") == 1.0:
                return port
        return None

    def profile(self, ports: list[int]) -> list[subprocess.Popen]:
        """With ``--profile DIR``: py-spy samples these masters through the hand-over, idle time included
        (``--profile-format``: raw, flame graph input; speedscope keeps the samples' order, a timeline)."""
        if not self.args.profile:
            return []
        os.makedirs(self.args.profile, exist_ok=True)
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        form = self.args.profile_format
        started = [subprocess.Popen(
            [spy, "record", "--pid", str(self.masters[port].pid), "--rate", "250", "--idle", "--nonblocking",
             "--format", form, "--duration", "6",
             "-o", os.path.join(self.args.profile, f"master-{port}.{'txt' if form == 'raw' else 'json'}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
        time.sleep(1.0)  # py-spy attaches
        return started

    def cpu(self, port: int) -> float:
        """The CPU seconds (user and system) a master has used so far."""
        times = psutil.Process(self.masters[port].pid).cpu_times()
        return times.user + times.system

    def others_cpu(self) -> dict[str, float]:
        """CPU seconds used so far by what shares the machine with the masters: the simulated agents,
        the ZooKeeper servers and this process (the framework)."""
        def used(pids: list[int]) -> float:
            total = 0.0
            for pid in pids:
                try:
                    times = psutil.Process(pid).cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system
            return total

        own = os.times()
        return {"simagents": used([p.pid for p in self.agents]),
                "zookeeper": used([s.process.pid for s in self.zk.servers if s.process is not None]),
                "bench": own.user + own.system}

    def stop(self) -> None:
        for process in self.agents:
            if process.poll() is None:
                process.terminate()
        for process in self.agents:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()
        for daemon in self.masters.values():
            daemon.stop()
        self.zk.stop()
        if self.args.keep:
            print(f"logs in {self.base}", file=sys.stderr)
        else:
            shutil.rmtree(self.base, ignore_errors=True)


@defer.inlineCallbacks
def run(reactor, args):
    bench = Bench(args)
    driver = None
    try:
        yield bench.zk.start()
        for _ in range(3):
            bench.start_master()
        leader = yield wait_for(bench.leader, 60, interval=0.2, what="an elected master")
        bench.start_agents()

        def all_agents(port):
            return bench.snapshot(port).addCallback(lambda m: m["master/slaves_active"] >= args.agents)

        yield wait_for(lambda: all_agents(leader), 300, interval=0.5, what="every simulated agent registered")
        framework = Framework(args.tasks_per_agent)
        driver = MesosSchedulerDriver(framework, FrameworkInfo(user="bench", name="failover", checkpoint=True,
                                                               failover_timeout=3600.0),
                                      bench.url, reactor=reactor, backoff=0.2)
        driver.start()
        total = args.agents * args.tasks_per_agent
        yield wait_for(lambda: framework.running() >= total, 600, interval=0.5, what="every task running")
        yield task.deferLater(reactor, 2.0, lambda: None)  # acknowledgements settle

        # -- kill -9 the leader ---------------------------------------------------------------
        killed = time.monotonic()
        bench.masters[leader].kill(signal.SIGKILL)
        new = yield wait_for(lambda: bench.leader({leader}), 120, interval=0.05, what="a new leader")
        elect_s = time.monotonic() - killed
        yield wait_for(lambda: all_agents(new), 300, interval=0.1, what="every agent back")
        agents_s = time.monotonic() - killed
        agents_at = time.monotonic()

        def reconciled():
            if framework.reregistered_at is None:
                return False
            if len(framework.reconciled) >= total:
                return True
            # A reconciliation answered before every agent was back misses their tasks: ask again.
            if framework.reconciling is not None and framework.reconciling < agents_at \
                    and time.monotonic() - framework.reconciling > 0.5:
                framework.reconcile(driver)
            return False

        yield wait_for(reconciled, 300, interval=0.05, what="the framework re-subscribed and reconciled")
        frameworks_s = time.monotonic() - killed
        yield task.deferLater(reactor, 1.0, lambda: None)
        summary = yield get_json(f"http://127.0.0.1:{new}/master/state-summary")
        known = sum(f.get("TASK_RUNNING", 0) for f in summary["frameworks"])
        lost = max(len(framework.not_running), total - known)

        # -- graceful hand-over ------------------------------------------------------------
        framework.reregistered_at = None
        framework.reconciling = None
        standby = next(port for port in bench.masters if port not in (leader, new))
        profilers = bench.profile([standby, new])
        cpu_before = bench.cpu(standby)
        others_before = bench.others_cpu()
        stopped, stopped_wall = time.monotonic(), time.time()
        bench.masters[new].kill(signal.SIGTERM)
        third = yield wait_for(lambda: bench.leader({leader, new}), 120, interval=0.05,
                               what="the third master elected")
        graceful_s = time.monotonic() - stopped
        yield wait_for(lambda: all_agents(third), 300, interval=0.05, what="every agent back after the hand-over")
        graceful_agents_s = time.monotonic() - stopped
        handover_cpu_s = bench.cpu(third) - cpu_before
        others = {key: value - others_before[key] for key, value in bench.others_cpu().items()}
        agents_at = time.monotonic()
        yield wait_for(reconciled, 300, interval=0.05, what="the framework back after the hand-over")
        graceful_frameworks_s = time.monotonic() - stopped
        # The same instants as the new leader recorded them (its clock is this machine's): what the polls
        # above add (this process is also the framework, busy with its reconciliation) is not in these.
        state = yield get_json(f"http://127.0.0.1:{third}/master/state")
        handover_s = state["elected_time"] - stopped_wall
        handover_agents_s = max(agent.get("reregistered_time", agent["registered_time"])
                                for agent in state["slaves"]) - stopped_wall
        handover_frameworks_s = max(f.get("reregistered_time", f["registered_time"])
                                    for f in state["frameworks"]) - stopped_wall

        print(f"agents={args.agents} tasks={total} zookeepers={args.zookeepers} "
              f"running_at_new_leader={known} not_running={len(framework.not_running)}")
        print(f"session_timeout_s={args.session_timeout:g} elect_s={elect_s:.2f} agents_back_s={agents_s:.2f} "
              f"frameworks_back_s={frameworks_s:.2f} lost={lost} graceful_s={graceful_s:.2f} "
              f"graceful_agents_s={graceful_agents_s:.2f} graceful_frameworks_s={graceful_frameworks_s:.2f} "
              f"handover_s={handover_s:.2f} handover_agents_s={handover_agents_s:.2f} "
              f"handover_frameworks_s={handover_frameworks_s:.2f} handover_cpu_s={handover_cpu_s:.2f} "
              + " ".join(f"handover_{key}_cpu_s={value:.2f}" for key, value in others.items())
              + f" load={os.getloadavg()[0]:.1f}")
        for spy in profilers:
            spy.wait(30)
    finally:
        if driver is not None:
            driver.abort()
        bench.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--tasks-per-agent", type=int, default=10)
    parser.add_argument("--processes", type=int, default=4, help="processes the simulated agents are spread over")
    parser.add_argument("--session-timeout", type=float, default=3.0, help="the masters' ZooKeeper session timeout")
    parser.add_argument("--zookeepers", type=int, default=3, help="ZooKeeper servers in the ensemble")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which the agents first connect")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the masters through the graceful hand-over into DIR")
    parser.add_argument("--profile-format", choices=("raw", "speedscope"), default="raw")
    args = parser.parse_args()
    task.react(run, [args])


if __name__ == "__main__":
    main()
