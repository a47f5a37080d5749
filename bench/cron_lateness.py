"""Scheduling lateness of the cron framework on real processes: N jobs of ``true``, each every 10 minutes.

A master, two agents and the cron framework (``twistd mesos-cron``, or inside the master with
``--hosted``) run as real processes on loopback. The jobs are posted through the Chronos API, spread
so that about N/600 launches fall due per second, with ``--burst`` of them on one minute boundary.
After ``--warmup`` minutes of running, every slot due during the next ``--minutes`` is measured; each
job's repetition count ends its schedule there, so the cluster falls quiet once the last slots ran.

Printed: lateness (slot time to the TASK_RUNNING the framework saw, from each job's run history) at
p50/p99/max, missed slots (no success recorded), duplicated runs (a slot run more than once, by the
framework's history and by the master's count of finished tasks), the framework's resident memory,
and the latency of listing all jobs and of a search matching all of them, sampled during the run.

    python bench/cron_lateness.py                        # 10,000 jobs, 2 + 15 minutes (~22 minutes)
    python bench/cron_lateness.py --jobs 600 --burst 100 --warmup 0 --minutes 2 --period 1
    python bench/cron_lateness.py --zk                  # the framework's state in a real ZooKeeper

Figures are printed, never asserted. The last line is
``p50_s= p99_s= max_s= missed= duplicated= list_ms= search_ms=``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402

from frameworks.cron.calendar import format_ms  # noqa: E402
from frameworks.cron.runs import parse_task_id  # noqa: E402
from tests.helpers.processes import Daemon, free_port, kill_processes_under  # noqa: E402

MINUTE = 60_000
#: Each task's resources: small, so that the agents' resources never hold a slot back.
TASK = {"cpus": 0.01, "mem": 16, "disk": 1}
AGENT_RESOURCES = "cpus:32;mem:65536;disk:65536"

_local = threading.local()


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    """One request on this thread's keep-alive connection to 127.0.0.1:``port``."""
    connections = getattr(_local, "connections", None)
    if connections is None:
        connections = _local.connections = {}
    for attempt in (0, 1):
        connection = connections.get(port)
        if connection is None:
            connection = connections[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            data = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, data, {"Content-Type": "application/json"} if data else {})
            response = connection.getresponse()
            return response.status, response.read()
        except (ConnectionError, http.client.HTTPException, OSError):
            connection.close()
            connections.pop(port, None)
            if attempt:
                raise
    raise AssertionError("unreachable")


def get_json(port: int, path: str) -> Any:
    code, body = request(port, "GET", path)
    if code != 200:
        raise RuntimeError(f"GET {path} answered {code}: {body[:200]!r}")
    return json.loads(body)


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, RuntimeError, ValueError, http.client.HTTPException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Plan:
    """The jobs: job n's first slot is ``start + offsets[n]``, then one every ``period``; ``counts[n]``
    slots in all, the last one before ``end``."""

    def __init__(self, jobs: int, burst: int, start: int, period: int, total: int):
        self.names = [f"job-{n:05d}" for n in range(jobs)]
        spread = max(1, jobs - burst)
        self.offsets = [0 if n < burst else int((n - burst + 0.5) * period / spread) for n in range(jobs)]
        self.start, self.period, self.end = start, period, start + total
        self.counts = [max(0, math.ceil((total - offset) / period)) for offset in self.offsets]

    def body(self, n: int) -> dict[str, Any]:
        first = format_ms(self.start + self.offsets[n])
        return {"name": self.names[n], "command": "true", "owner": "bench@example.com", "disabled": self.counts[n] == 0,
                "schedule": f"R{self.counts[n]}/{first}/PT{self.period // 1000}S", **TASK}

    def slots(self, n: int) -> list[int]:
        return [self.start + self.offsets[n] + i * self.period for i in range(self.counts[n])]


class Bench:
    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="mesostw-cron-bench-"))
        self.daemons: list[Daemon] = []
        self.zk: Any = None
        self.api_port = free_port()
        self.master_port = free_port()

    def daemon(self, plugin: str, args: list[str], name: str) -> Daemon:
        daemon = Daemon(plugin, args, os.path.join(self.base, f"{name}.log"))
        self.daemons.append(daemon.start())
        return daemon

    def start(self, history: int) -> None:
        options = self.options
        cron_flags = [f"job_history_limit={history}", "mesos_task_cpu=0.01", "mesos_task_mem=16",
                      "mesos_task_disk=1"]
        master_args = [f"--port={self.master_port}", f"--work_dir={self.base}/master"]
        if options.hosted:
            master_args += ["--frameworks=cron", f"--cron_http_port={self.api_port}",
                            *(f"--cron_{flag}" for flag in cron_flags)]
        self.master = self.daemon("mesos-master", master_args, "master")
        for index in range(options.agents):
            self.daemon("mesos-slave", [f"--master=127.0.0.1:{self.master_port}", f"--port={free_port()}",
                                        f"--work_dir={self.base}/agent{index}", f"--resources={AGENT_RESOURCES}"],
                        f"agent{index}")
        if options.hosted:
            self.cron = self.master
        else:
            args = [f"--master=127.0.0.1:{self.master_port}", f"--http_port={self.api_port}",
                    *(f"--{flag}" for flag in cron_flags)]
            if options.zk:
                from tests.helpers.zookeeper import ZooKeeperEnsemble

                self.zk = ZooKeeperEnsemble(1)
                self.zk.start_blocking()
                args.append(f"--zk={self.zk.url('/mesostw/cron')}")
            else:
                args.append(f"--work_dir={self.base}/cron")
            self.cron = self.daemon("mesos-cron", args, "cron")
        wait(lambda: get_json(self.master_port, "/master/state")["activated_slaves"] == options.agents, 60,
             "the agents to register")
        wait(lambda: request(self.api_port, "GET", "/v1/scheduler/jobs")[0] == 200, 60, "the framework to lead")

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        kill_processes_under(self.base)
        if self.zk is not None:
            self.zk.stop()
        if self.options.keep:
            print(f"logs and sandboxes kept in {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    def rss_mb(self) -> float:
        return psutil.Process(self.cron.pid).memory_info().rss / 2**20

    def cpu(self) -> dict[str, tuple[float, float]]:
        """CPU seconds used so far by each daemon: by its own process, and with every process below it
        (the agents' launchers, executors and tasks, reaped ones too)."""
        used: dict[str, tuple[float, float]] = {}
        for daemon in self.daemons:
            name = os.path.splitext(os.path.basename(daemon.log_path))[0]
            try:
                root = psutil.Process(daemon.pid)
                own = sum(root.cpu_times()[:2])
                total = 0.0
                for process in [root, *root.children(recursive=True)]:
                    times = process.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                continue
            used[name] = (own, total)
        return used


def post_all(port: int, plan: Plan, threads: int) -> None:
    def post(n: int) -> None:
        code, body = request(port, "POST", "/v1/scheduler/iso8601", plan.body(n))
        if code != 204:
            raise RuntimeError(f"posting {plan.names[n]} answered {code}: {body[:200]!r}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, range(len(plan.names))))


def timed(port: int, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    code, body = request(port, "GET", path)
    elapsed = (time.perf_counter() - started) * 1000
    if code != 200:
        raise RuntimeError(f"GET {path} answered {code}")
    return elapsed, len(json.loads(body))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="number of jobs")
    parser.add_argument("--burst", type=int, default=1000, help="jobs due together on one minute boundary")
    parser.add_argument("--period", type=float, default=10, help="minutes between two runs of a job")
    parser.add_argument("--warmup", type=float, default=2, help="minutes of running before measuring")
    parser.add_argument("--minutes", type=float, default=15, help="minutes measured")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--hosted", action="store_true", help="run the framework inside the master")
    parser.add_argument("--zk", action="store_true", help="keep the framework's state in ZooKeeper")
    parser.add_argument("--threads", type=int, default=8, help="concurrent API clients while posting jobs")
    parser.add_argument("--sample", type=float, default=30, help="seconds between two list/search samples")
    parser.add_argument("--keep", action="store_true", help="keep the logs and sandboxes")
    options = parser.parse_args()
    burst = min(options.burst, options.jobs)
    period = int(options.period * MINUTE)
    warmup, measured = int(options.warmup * MINUTE), int(options.minutes * MINUTE)

    bench = Bench(options)
    try:
        # Enough history for every slot of a job, so that each slot's outcome can be read back.
        most = math.ceil((warmup + measured) / period) + 1
        bench.start(history=most + 5)
        # The first slot: the minute boundary after the posting is surely done.
        lead = 30 + options.jobs * 0.01
        start = (int((time.time() + lead) * 1000) // MINUTE + 1) * MINUTE
        plan = Plan(options.jobs, burst, start, period, warmup + measured)
        posted_at = time.perf_counter()
        post_all(bench.api_port, plan, options.threads)
        post_s = time.perf_counter() - posted_at
        late = time.time() * 1000 - start
        if late > 0:
            raise SystemExit(f"posting {options.jobs} jobs took {post_s:.0f}s, past the first slot; raise the lead")
        print(f"posted {options.jobs} jobs in {post_s:.1f}s ({options.jobs / post_s:.0f}/s); first slot in "
              f"{-late / 1000:.0f}s, measuring slots due {format_ms(start + warmup)} .. {format_ms(plan.end)}",
              flush=True)

        list_ms: list[float] = []
        search_ms: list[float] = []
        rss: list[float] = []
        cpu_before: dict[str, tuple[float, float]] | None = None
        load = os.getloadavg()[0]
        query = f"/v1/scheduler/jobs/search?command=true&limit={options.jobs}"
        while time.time() * 1000 < plan.end:
            now = time.time() * 1000
            if cpu_before is None:  # wake up when the window opens, to count the CPU used from then on
                time.sleep(max(0.0, (start + warmup - now) / 1000))
                cpu_before, window_start = bench.cpu(), time.time()
                continue
            time.sleep(min(options.sample, max(0.0, (plan.end - now) / 1000)))
            elapsed, count = timed(bench.api_port, "/v1/scheduler/jobs")
            list_ms.append(elapsed)
            elapsed, found = timed(bench.api_port, query)
            search_ms.append(elapsed)
            rss.append(bench.rss_mb())
            if count != options.jobs or found != options.jobs:
                print(f"warning: listed {count} and found {found} of {options.jobs} jobs")

        cpu_after, window_s = bench.cpu(), time.time() - window_start if cpu_before is not None else 0.0
        load = max(load, os.getloadavg()[0])
        # Wait for every slot's outcome: a success, a failure or a miss (at most epsilon after its time).
        expected = sum(plan.counts)

        def settled() -> bool:
            jobs = get_json(bench.api_port, "/v1/scheduler/jobs")
            return sum(j["successCount"] + j["errorCount"] + j.get("missedCount", 0) for j in jobs) >= expected

        wait(settled, 180, "every slot's outcome", interval=2)
        lateness, burst_lateness, missed, duplicated, failed = collect(bench.api_port, plan, start + warmup, burst)
        metrics = get_json(bench.master_port, "/metrics/snapshot")
        master_finished = int(metrics.get("master/tasks_finished", 0))
        successes = expected - missed - failed
        extra = max(0, master_finished - successes)
        rss_mb = max(rss) if rss else bench.rss_mb()
    finally:
        bench.stop()

    p50, p99, worst = (percentile(lateness, q) for q in (0.5, 0.99, 1.0))
    list_median = statistics.median(list_ms) if list_ms else float("nan")
    search_median = statistics.median(search_ms) if search_ms else float("nan")
    print(f"slots measured: {len(lateness)} (of {expected} run in all); failed={failed}; "
          f"master finished {master_finished} tasks for {successes} successful slots")
    print(f"lateness: mean={statistics.fmean(lateness) if lateness else 0:.3f}s p90={percentile(lateness, 0.9):.3f}s "
          f"p99.9={percentile(lateness, 0.999):.3f}s; the {len(burst_lateness)} slots of bursts: "
          f"p50={percentile(burst_lateness, 0.5):.3f}s p90={percentile(burst_lateness, 0.9):.3f}s "
          f"max={percentile(burst_lateness, 1.0):.3f}s")
    if cpu_before is not None and window_s > 0:
        runs = max(1, len(lateness))
        shares = []
        for name, (own, total) in sorted(cpu_before.items()):
            own_after, total_after = cpu_after.get(name, (own, total))
            shares.append(f"{name} {1000 * (total_after - total) / runs:.2f} ms/run (itself "
                          f"{1000 * (own_after - own) / runs:.2f})")
        print(f"CPU over the {window_s:.0f}s measured ({len(lateness)} runs; machine load up to {load:.1f} on "
              f"{os.cpu_count()} cores), with the processes each started: {', '.join(shares)}")
    print(f"framework memory: {rss_mb:.0f} MB resident (max over the samples); list of {options.jobs} jobs: "
          f"median {list_median:.0f} ms, max {max(list_ms, default=float('nan')):.0f} ms; search: median "
          f"{search_median:.0f} ms, max {max(search_ms, default=float('nan')):.0f} ms")
    print(f"p50_s={p50:.3f} p99_s={p99:.3f} max_s={worst:.3f} missed={missed} duplicated={duplicated + extra} "
          f"list_ms={list_median:.0f} search_ms={search_median:.0f} rss_mb={rss_mb:.0f}")


def collect(port: int, plan: Plan, measured_from: int,
            burst: int) -> tuple[list[float], list[float], int, int, int]:
    """Lateness (s) of each slot due from ``measured_from`` (and of those of the ``burst`` jobs due
    together), and over all slots: missed (no success), duplicated (successes beyond one) and failed."""
    lateness: list[float] = []
    burst_lateness: list[float] = []
    missed = duplicated = failed = 0

    def history(n: int) -> dict[str, Any]:
        return get_json(port, f"/v1/scheduler/job/history/{plan.names[n]}")

    with ThreadPoolExecutor(4) as pool:
        histories = list(pool.map(history, range(len(plan.names))))
    for n, shown in enumerate(histories):
        outcomes: dict[int, Counter[str]] = {}
        late: dict[int, float] = {}
        for entry in shown["runs"]:
            parsed = parse_task_id(entry.get("taskId", ""))
            if parsed is None:
                continue
            due = parsed[0]
            outcomes.setdefault(due, Counter())[entry["status"]] += 1
            if entry["status"] == "success" and "latenessSeconds" in entry:
                late[due] = entry["latenessSeconds"]
        for due in plan.slots(n):
            seen = outcomes.get(due, Counter())
            if seen["success"] == 0:
                if seen["failure"]:
                    failed += 1
                else:
                    missed += 1
            duplicated += max(0, seen["success"] - 1)
            if due >= measured_from and due in late:
                lateness.append(late[due])
                if n < burst:
                    burst_lateness.append(late[due])
    return lateness, burst_lateness, missed, duplicated, failed


if __name__ == "__main__":
    main()
