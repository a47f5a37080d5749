"""Status updates through a real master, with acknowledgements: how many per second it sustains.

A master as a real process; simulated agents (:mod:`bench.simagents`, their real PB link) in another
process; a framework on the real PB scheduler driver here, acknowledging every update (implicit
acknowledgements, one ACKNOWLEDGE call per update). Once the tasks run, every agent follows each
acknowledged TASK_RUNNING with another (``--churn``), so that each task always has one update in
flight: agent -> master -> framework -> ACKNOWLEDGE -> master -> agent. Measured over ``--seconds``
from the master's own counters (``/metrics/snapshot``): acknowledgements passed to agents per second
(``updates_per_s``), and the master's CPU use meanwhile (``master_cpu``, 1.0 = one core busy; when it
is well below 1 the framework or the simulated agents, not the master, set the pace).

    python bench/status_updates.py [--agents 20 --tasks 2000 --seconds 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
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

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = Resources.parse("cpus:0.01;mem:8")


class Launcher(Scheduler):
    """Launches ``count`` tasks spread over the offers, then just receives (and acknowledges) updates."""

    def __init__(self, count: int, per_agent: int):
        self.pending = [f"task-{i:06d}" for i in range(count)]
        self.per_agent = per_agent
        self.running: set[str] = set()
        self.updates = 0
        self.bad: set[str] = set()

    def resourceOffers(self, driver, offers):
        for offer in offers:
            batch = []
            available = offer.resources
            while self.pending and len(batch) < self.per_agent and available.contains(TASK):
                task_id = self.pending.pop()
                available = available - TASK
                batch.append({"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": offer.agent_id},
                              "resources": TASK.to_json(), "command": {"value": "sleep 3600"}})
            if batch:
                driver.launchTasks([offer.id], batch, {"refuse_seconds": 3600})
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 3600})

    def statusUpdate(self, driver, status):
        self.updates += 1
        if status.state == T.RUNNING:
            self.running.add(status.task_id)
        else:
            self.bad.add(status.task_id)


@defer.inlineCallbacks
def run(reactor, args):
    base = tempfile.mkdtemp(prefix="mesostw-bench-updates-")
    port = free_port()
    master = Daemon("mesos-master", [f"--port={port}", "--allocation_interval=0.2secs"],
                    os.path.join(base, "master.log")).start()
    agents_log = open(os.path.join(base, "agents.log"), "w")
    agents = subprocess.Popen([sys.executable, os.path.join(HERE, "simagents.py"), f"--master=127.0.0.1:{port}",
                               f"--count={args.agents}", "--churn", "--spread=0.5"],
                              stdout=agents_log, stderr=subprocess.STDOUT, env=environment())
    driver = None
    try:
        url = f"http://127.0.0.1:{port}"
        yield wait_for(lambda: get_json(f"{url}/master/state-summary").addCallback(
            lambda s: len(s["slaves"]) == args.agents), 60, interval=0.2, what="the simulated agents")
        scheduler = Launcher(args.tasks, -(-args.tasks // args.agents))
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="bench", name="updates"),
                                      f"127.0.0.1:{port}", reactor=reactor, backoff=0.2)
        driver.start()
        yield wait_for(lambda: len(scheduler.running) >= args.tasks, 120, interval=0.2, what="every task running")
        yield task.deferLater(reactor, 2.0, lambda: None)  # the churn reaches its pace
        process = psutil.Process(master.pid)
        before = yield get_json(f"{url}/metrics/snapshot")
        cpu_before, started = process.cpu_times(), time.monotonic()
        yield task.deferLater(reactor, args.seconds, lambda: None)
        after = yield get_json(f"{url}/metrics/snapshot")
        cpu_after, elapsed = process.cpu_times(), time.monotonic() - started
        key = "master/messages_status_update_acknowledgement"
        updates = "master/messages_status_update"
        acks_per_s = (after[key] - before[key]) / elapsed
        sent_per_s = (after[updates] - before[updates]) / elapsed
        cpu = ((cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)) / elapsed
        print(f"agents={args.agents} tasks={args.tasks} seconds={elapsed:.1f} status_updates_per_s={sent_per_s:.0f} "
              f"non_running={len(scheduler.bad)}")
        print(f"updates_per_s={acks_per_s:.0f} master_cpu={cpu:.2f}")
    finally:
        if driver is not None:
            driver.abort()
        agents.terminate()
        try:
            agents.wait(10)
        except subprocess.TimeoutExpired:
            agents.kill()
            agents.wait()
        agents_log.close()
        master.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"logs in {base}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args()
    task.react(run, [args])


if __name__ == "__main__":
    main()
