"""The cron planner's own cost at scale, without a cluster: N jobs, each every 10 minutes, spread so that
about N/600 launches fall due per second with a burst of ``--burst`` jobs on one minute boundary.

A simulated master launches what the planner asks for on one big offer per tick and reports
TASK_RUNNING and TASK_FINISHED at once, so the figures are the framework's CPU per run and its API
latency with N jobs in memory, not a cluster's. The end-to-end lateness on real processes is
``bench/cron_lateness.py``'s job. Figures are printed, never asserted.

    python bench/cron_planner.py --jobs 10000 --minutes 20
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from frameworks.cron import effects as fx  # noqa: E402
from frameworks.cron import views  # noqa: E402
from frameworks.cron.calendar import format_ms  # noqa: E402
from frameworks.cron.planner import Planner, Settings  # noqa: E402
from mesostw.model import task as T  # noqa: E402
from mesostw.model.resources import Resources  # noqa: E402
from mesostw.model.task import Offer, TaskStatus, new_uuid  # noqa: E402

T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z
OFFER = Resources.parse("cpus:100000;mem:100000000;disk:100000000")


def jobs(count: int, burst: int) -> list[dict]:
    """Every job runs every 10 minutes; ``burst`` of them at 12:01:00, the rest spread evenly."""
    out = []
    spread = max(1, count - burst)
    for n in range(count):
        offset_ms = 0 if n < burst else (n - burst) * 600_000 // spread
        start = format_ms(T0 + 60_000 + offset_ms)
        out.append({"name": f"job-{n:05d}", "command": "true", "owner": "bench@example.com", "disabled": False,
                    "schedule": f"R/{start}/PT10M"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    tracemalloc.start()
    planner = Planner(Settings(lookahead_ms=5_000))
    now = T0
    started = time.perf_counter()
    for body in jobs(args.jobs, min(args.burst, args.jobs)):
        effects = planner.put_job(body, "iso8601", now)
        for action in effects.after:
            if isinstance(action, fx.Recorded):
                planner.recorded(action.keys, now)
    define_s = time.perf_counter() - started
    memory_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    gc.collect()

    end = T0 + int(args.minutes * 60_000)
    runs, offers, busy = 0, 0, 0.0
    lateness: list[int] = []
    while now < end:
        wake = planner.next_wakeup()
        now = max(now + 1, min(wake if wake is not None else end, end))
        tick = time.perf_counter()
        pending = [planner.tick(now)]
        while pending:
            effects = pending.pop()
            for action in effects.now + effects.after:
                if isinstance(action, fx.Recorded):
                    pending.append(planner.recorded(action.keys, now))
                elif isinstance(action, fx.Revive):
                    offers += 1
                    offer = Offer(f"O{offers}", "F", "S1", "host1", OFFER)
                    pending.append(planner.offers([offer], now))
                elif isinstance(action, fx.Launch):
                    for task in action.tasks:
                        runs += 1
                        for state in (T.RUNNING, T.FINISHED):
                            status = TaskStatus(task.task_id, state, source=T.SOURCE_EXECUTOR, agent_id="S1",
                                                uuid=new_uuid(), timestamp=now / 1000)
                            pending.append(planner.status(status, now))
        busy += time.perf_counter() - tick
    lateness = list(planner.lateness)

    record_count = len(planner.jobs)
    t = time.perf_counter()
    body = views.jobs_bytes(planner, list(planner.names), now)
    list_cold_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    body = views.jobs_bytes(planner, list(planner.names), now)
    list_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    names = views.search(planner, name="job-", limit=record_count)
    found = views.jobs_bytes(planner, names, now)
    search_ms = (time.perf_counter() - t) * 1000
    assert len(json.loads(found)) == record_count
    per_run_us = busy / runs * 1e6 if runs else 0.0
    missed = sum(r.counters.missed_count for r in planner.jobs.values())
    print(f"jobs={record_count} defined in {define_s:.2f}s, planner memory {memory_mb:.1f} MB "
          f"({memory_mb * 1024 / max(1, record_count):.2f} KB/job)")
    print(f"simulated {args.minutes:g} min: {runs} runs, {offers} offer rounds, planner busy {busy:.2f}s "
          f"({per_run_us:.0f} us/run), lateness max {max(lateness) if lateness else 0} ms (simulated master)")
    print(f"list: {len(body) / 2**20:.1f} MB in {list_cold_ms:.0f} ms cold, {list_ms:.1f} ms cached; "
          f"search of every job {search_ms:.1f} ms")
    print(f"jobs={record_count} runs={runs} us_per_run={per_run_us:.0f} missed={missed} memory_mb={memory_mb:.1f} "
          f"list_ms={list_ms:.1f} list_cold_ms={list_cold_ms:.0f} search_ms={search_ms:.1f}")


if __name__ == "__main__":
    main()
