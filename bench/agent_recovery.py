"""Agent restart with N running tasks: how long until the agent is back under its ID with all of them.

A master and one agent as real processes; a checkpointing framework runs N ``sleep`` tasks; the
agent is killed with SIGKILL and started again on its --work_dir. Measured:

* ``recovered_s``: from the new process's start to every executor reconnected (the agent's own
  figure, logged as "Recovered agent ... in Xs", which includes reading the checkpoint);
* ``back_s``: from the restart to the master listing the agent active again with N running tasks;
* ``process_start_s``: from the restart to the agent answering HTTP (twistd and imports: the floor).

    python bench/agent_recovery.py --tasks 100 [--isolation cgroups]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

from mesostw.model import task as T  # noqa: E402
from mesostw.model.info import FrameworkInfo  # noqa: E402
from mesostw.model.resources import Resources  # noqa: E402
from mesostw.scheduler.driver import Scheduler  # noqa: E402
from mesostw.scheduler.pb import MesosSchedulerDriver  # noqa: E402
from tests.helpers.processes import ProcessCluster, get_json, wait_for  # noqa: E402

TASK = Resources.parse("cpus:0.01;mem:8")


class Runner(Scheduler):
    def __init__(self, count: int):
        self.pending = [f"sleeper-{i}" for i in range(count)]
        self.states: dict[str, str] = {}

    def resourceOffers(self, driver, offers):
        for offer in offers:
            available, batch = offer.resources, []
            while self.pending and available.contains(TASK):
                task_id = self.pending.pop()
                available = available - TASK
                batch.append({"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": offer.agent_id},
                              "resources": TASK.to_json(), "command": {"value": "sleep 3600"}})
            if batch:
                driver.launchTasks([offer.id], batch, {"refuse_seconds": 0.01})
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 60})

    def statusUpdate(self, driver, status):
        self.states[status.task_id] = status.state


class _Case:
    def __init__(self):
        self.cleanups = []

    def addCleanup(self, fn, *args):
        self.cleanups.append((fn, args))

    def cleanup(self):
        return defer.DeferredList([defer.maybeDeferred(fn, *args) for fn, args in reversed(self.cleanups)])


@defer.inlineCallbacks
def run(reactor, options):
    case = _Case()
    agent_args = [f"--isolation={options.isolation}", "--executor_reregistration_timeout=30secs"]
    if options.isolation.startswith("cgroups"):
        from tests.helpers.cgroups import remove_root, require_cgroups, unique_root

        require_cgroups()
        root = unique_root()
        agent_args.append(f"--cgroups_root={root}")
        case.addCleanup(remove_root, root)
    resources = f"cpus:{options.tasks * 0.01 + 1:.2f};mem:{options.tasks * 8 + 1024};disk:1024"
    try:
        cluster = yield ProcessCluster(case, agents=1, resources=resources, agent_args=agent_args).start()
        runner = Runner(options.tasks)
        driver = MesosSchedulerDriver(runner, FrameworkInfo(user="root", name="recovery-bench", checkpoint=True,
                                                            failover_timeout=3600.0), cluster.master_address,
                                      reactor=reactor)
        driver.start()
        yield wait_for(lambda: sum(s == T.RUNNING for s in runner.states.values()) == options.tasks, 300,
                       interval=0.1, what="every task running")
        agent = cluster.agents[0]
        port = next(a.split("=")[1] for a in agent.args if a.startswith("--port="))
        agent.kill(signal.SIGKILL)
        agent.process.wait()
        restarted = time.monotonic()
        agent.start()
        yield wait_for(lambda: get_json(f"http://127.0.0.1:{port}/state"), 60, interval=0.01, what="the agent up")
        answering = time.monotonic() - restarted

        def back(state):
            running = sum(len([t for t in f["tasks"] if t["state"] == T.RUNNING]) for f in state["frameworks"])
            return [s["active"] for s in state["slaves"]] == [True] and running == options.tasks

        yield wait_for(lambda: cluster.state().addCallback(back), 120, interval=0.01, what="the agent back")
        back_s = time.monotonic() - restarted
        found = re.findall(r"Recovered agent \S+ in ([0-9.]+)s", agent.log())
        lost = [t for t, s in runner.states.items() if s != T.RUNNING]
        driver.stop()
        yield driver.stopped()
    finally:
        yield case.cleanup()
    print(f"tasks={options.tasks} isolation={options.isolation} terminal_or_lost={len(lost)}")
    print(f"tasks={options.tasks} recovered_s={float(found[-1]):.3f} back_s={back_s:.3f} "
          f"process_start_s={answering:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100, help="running tasks when the agent is killed")
    parser.add_argument("--isolation", default="posix", help="the agent's --isolation")
    options = parser.parse_args()
    task.react(lambda reactor: run(reactor, options))


if __name__ == "__main__":
    main()
