"""Service API latency with many apps: 1,000 apps x 10 instances on simulated agents.

The service framework runs on the in-process cluster (master and agents cores, fake executors, a
task.Clock); once every instance runs, the two calls marathon-lb and dashboards make all the
time are timed through real HTTP parsing and JSON encoding (an in-memory transport, no sockets):
``GET /v2/apps?embed=apps.tasks`` and ``GET /v2/tasks``. Marathon became unusable at 3-4k tasks;
the goal here is under 200 ms each. The last line gives the medians in milliseconds. The objects of
the simulated cluster are frozen out of the garbage collector's reach before timing (they would not
be in the framework's process).

    python bench/service_api.py --apps 1000 --instances 10
"""

from __future__ import annotations

import argparse
import bisect
import gc
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import base, task  # noqa: E402

from tests.helpers.cluster import Cluster  # noqa: E402
from tests.helpers.service import ServiceHarness, add_agent  # noqa: E402


class SortedClock(task.Clock):
    """A task.Clock that keeps its calls sorted as they come, instead of sorting them all after each
    call and each run: with tens of thousands of timers (one per status update in flight) the stock
    Clock spends minutes sorting while the simulated cluster starts."""

    def callLater(self, delay: float, callable: Any, *args: Any, **kw: Any) -> base.DelayedCall:
        call = base.DelayedCall(self.seconds() + delay, callable, args, kw, self.calls.remove,
                                lambda c: self._resort(c), self.seconds)
        bisect.insort(self.calls, call, key=lambda c: c.getTime())
        return call

    def _resort(self, call: base.DelayedCall) -> None:
        self.calls.remove(call)
        bisect.insort(self.calls, call, key=lambda c: c.getTime())

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        while self.calls and self.calls[0].getTime() <= self.seconds():
            call = self.calls.pop(0)
            call.called = 1
            call.func(*call.args, **call.kw)


def build(apps: int, instances: int, agents: int) -> ServiceHarness:
    cluster = Cluster(agents=0, clock=SortedClock())
    per_agent = apps * instances // agents + 100
    resources = f"cpus:{per_agent};mem:{per_agent * 64};disk:1024;ports:[10000-{10000 + per_agent * 2}]"
    for index in range(agents):
        add_agent(cluster, f"agent-{index:03d}", resources, port=5051 + index)
    cluster.settle(rounds=10000)
    harness = ServiceHarness(cluster=cluster, max_instances_per_offer=1000).start()
    for index in range(apps):
        reply = harness.call("POST", "/v2/apps", {"id": f"/bench/app-{index:04d}", "cmd": "serve", "cpus": 0.01,
                                                  "mem": 1, "instances": instances, "labels": {"team": "bench"}})
        assert reply.code == 201, (reply.code, reply.body)
    wanted = apps * instances
    harness.until(lambda: len(harness.state.instances) == wanted and not harness.deployments()
                  and all(i.running for i in harness.state.instances), limit=3600, step=1.0)
    return harness


def timed(harness: ServiceHarness, target: str, repeat: int) -> tuple[float, int]:
    """Median milliseconds of ``repeat`` GETs of ``target``, and the answer's size in bytes."""
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        reply = harness.call("GET", target)
        times.append((time.perf_counter() - started) * 1000)
        assert reply.code == 200, (target, reply.code, reply.body[:200])
        size = len(reply.body)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=10, help="instances per app")
    parser.add_argument("--agents", type=int, default=50, help="simulated agents")
    parser.add_argument("--repeat", type=int, default=7, help="timed GETs of each endpoint (median)")
    options = parser.parse_args()
    started = time.perf_counter()
    harness = build(options.apps, options.instances, options.agents)
    # The simulated master and agents share this heap: keep the garbage collector from walking their
    # millions of objects in the middle of a timed request, as it would not in the framework's own process.
    gc.collect()
    gc.freeze()
    print(f"{options.apps} apps x {options.instances} instances on {options.agents} simulated agents running "
          f"after {time.perf_counter() - started:.1f}s")
    apps_ms, apps_bytes = timed(harness, "/v2/apps?embed=apps.tasks", options.repeat)
    tasks_ms, tasks_bytes = timed(harness, "/v2/tasks", options.repeat)
    print(f"GET /v2/apps?embed=apps.tasks: {apps_ms:.1f} ms for {apps_bytes / 1e6:.1f} MB; "
          f"GET /v2/tasks: {tasks_ms:.1f} ms for {tasks_bytes / 1e6:.1f} MB")
    print(f"apps_ms={apps_ms:.1f} tasks_ms={tasks_ms:.1f}")


if __name__ == "__main__":
    main()
