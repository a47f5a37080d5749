"""Rolling deployment of 100 small HTTP servers on a real cluster: a master hosting the service
framework and two agents (127.0.0.1 and 127.0.0.2), as real processes.

1. An app of 100 instances of a tiny HTTP server with an HTTP health check every second is scaled
   from 0 to 100: ``scale_up_s`` is the time until all 100 are healthy.
2. A new version is deployed with ``minimumHealthCapacity`` 0.9 and ``maximumOverCapacity`` 0.1:
   ``rolling_s`` is the time until all 100 run the new version and are healthy, and
   ``max_unavailable`` the most instances missing at once, sampled all along: the running instances
   the API lists, each asked for a page (an instance that does not answer is unavailable); the
   strategy allows 10.

Goals (issue 9): rolling under 30 s, scale-up under 10 s.

    python bench/service_rolling.py --instances 100
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task, threads  # noqa: E402

from tests.helpers.processes import ProcessCluster, free_port, get_json, wait_for  # noqa: E402
from tests.helpers.service_processes import agent_ips, serving  # noqa: E402

#: A tiny HTTP server on $HOST:$PORT0 (python3 -S: no site packages, ~10 ms to start).
SERVER = ("exec python3 -S -c 'import os, socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind((os.environ[\"HOST\"], int(os.environ[\"PORT0\"]))); s.listen(64)\n"
          "while True:\n"
          "    c, _ = s.accept(); c.recv(4096)\n"
          "    c.sendall(b\"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok\"); c.close()'")


class _Case:
    """Enough of a TestCase for ProcessCluster."""

    def __init__(self) -> None:
        self.cleanups: list[Any] = []

    def addCleanup(self, fn: Any, *args: Any) -> None:
        self.cleanups.append((fn, args))

    def cleanup(self) -> None:
        for fn, args in reversed(self.cleanups):
            fn(*args)


def call(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


class Sampler:
    """Samples the app through the API: how many instances are healthy (and answer), which version."""

    def __init__(self, api: str, instances: int):
        self.api = api
        self.instances = instances
        self.pool = ThreadPoolExecutor(32)
        self.worst = 0
        self.samples = 0
        self.most_alive = 0

    def sample(self, version: str | None = None) -> tuple[int, int, bool]:
        """(instances serving, instances of ``version`` serving, deployments pending)."""
        app = call(f"{self.api}/v2/apps/bench?embed=app.tasks")["app"]
        live = [t for t in app["tasks"] if t["state"] in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")]
        # Every running instance is asked, not only those healthy when the API answered: one that the
        # framework saw become healthy a moment later may already have let it kill an old one.
        running = [t for t in live if t["state"] == "TASK_RUNNING"]
        answers = list(self.pool.map(lambda t: serving(t["host"], t["ports"][0], 2.0), running))
        up = [t for t, ok in zip(running, answers, strict=True) if ok]
        self.samples += 1
        self.worst = max(self.worst, self.instances - len(up))
        self.most_alive = max(self.most_alive, len(live))
        new = sum(1 for t in up if version is None or t["version"] == version)
        return len(up), new, bool(app["deployments"])


@defer.inlineCallbacks
def run(reactor: Any, options: argparse.Namespace) -> Any:
    case = _Case()
    n = options.instances
    api_port = free_port()
    per_agent = n + 20
    resources = f"cpus:{per_agent};mem:{per_agent * 64};disk:1024;ports:[31000-32999]"
    try:
        cluster = ProcessCluster(case, agents=2, resources=resources, agent_ips=agent_ips(2),
                                 master_args=["--frameworks=service", f"--service_http_port={api_port}",
                                              "--service_scale_apps_interval=1secs"])
        yield cluster.start()
        api = f"http://127.0.0.1:{api_port}"
        yield wait_for(lambda: get_json(f"{api}/v2/info").addCallback(lambda i: i["frameworkId"]), 30,
                       what="the framework to register")
        app = {"id": "/bench", "cmd": SERVER, "instances": 0, "cpus": 0.01, "mem": 8,
               "healthChecks": [{"protocol": "HTTP", "path": "/", "intervalSeconds": 1, "timeoutSeconds": 2,
                                 "gracePeriodSeconds": 60, "maxConsecutiveFailures": 3}],
               "upgradeStrategy": {"minimumHealthCapacity": 0.9, "maximumOverCapacity": 0.1}}
        yield threads.deferToThread(call, f"{api}/v2/apps", "POST", app)
        sampler = Sampler(api, n)

        started = time.perf_counter()
        yield threads.deferToThread(call, f"{api}/v2/apps/bench", "PUT", {"instances": n})
        yield wait_for(lambda: threads.deferToThread(sampler.sample).addCallback(lambda s: s[0] == n and not s[2]),
                       options.timeout, interval=0.05, what=f"{n} healthy instances")
        scale_up = time.perf_counter() - started
        print(f"scaled 0 -> {n} healthy in {scale_up:.1f}s")

        sampler.worst, sampler.samples, sampler.most_alive = 0, 0, 0
        started = time.perf_counter()
        result = yield threads.deferToThread(call, f"{api}/v2/apps/bench", "PUT", {"env": {"BENCH_VERSION": "2"}})
        version = result["version"]
        yield wait_for(lambda: threads.deferToThread(sampler.sample, version).addCallback(
            lambda s: s[1] == n and not s[2]), options.timeout, interval=0.05, what="the new version everywhere")
        rolling = time.perf_counter() - started
        allowed = n - math.ceil(n * 0.9)
        print(f"rolled {n} instances to a new version in {rolling:.1f}s; {sampler.samples} samples: at most "
              f"{sampler.worst} unavailable (the strategy allows {allowed}), at most {sampler.most_alive} "
              f"instances at once (allowed {math.floor(n * 1.1)})")
        sampler.pool.shutdown()
        print(f"rolling_s={rolling:.1f} max_unavailable={sampler.worst} scale_up_s={scale_up:.1f}")
    finally:
        case.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300, help="give up on a phase after this many seconds")
    options = parser.parse_args()
    task.react(lambda reactor: run(reactor, options))


if __name__ == "__main__":
    main()
