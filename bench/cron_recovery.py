"""How long a new cron leader takes to be ready with N jobs in ZooKeeper.

A real ZooKeeper server (Debian's package, as the tests start it) is filled with N job records as the
framework writes them (each with a full run history) and ``--runs`` pending runs, through the
ZooKeeper store in the framework's own commit sizes. Then, as a new leader does: a fresh session and
store, the subtree read (``ZooKeeper.read_tree``: pipelined from a thread), every record read and parsed,
and the planner rebuilt. Figures are printed, never asserted; the last line is
``jobs= runs= mb= read_s= parse_s= recover_s= ready_s=``.

    python bench/cron_recovery.py --jobs 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

from frameworks.cron import writer as W  # noqa: E402
from frameworks.cron.calendar import format_ms  # noqa: E402
from frameworks.cron.planner import Planner, Settings  # noqa: E402
from frameworks.cron.records import job_path, run_path  # noqa: E402
from frameworks.cron.runs import Run  # noqa: E402
from frameworks.cron.service import read_state  # noqa: E402
from mesostw.store import Put, dump  # noqa: E402
from mesostw.store.zookeeper import ZooKeeperStateStore  # noqa: E402
from mesostw.zk.client import ZooKeeper  # noqa: E402
from mesostw.zk.url import parse_zk_url  # noqa: E402
from tests.helpers.zookeeper import ZooKeeperEnsemble  # noqa: E402

T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z
ROOT = "/mesostw/cron/state"


def records(jobs: int, runs: int, history: int) -> list[Put]:
    """The store's contents for ``jobs`` jobs every 10 minutes, each with ``history`` past runs, and
    ``runs`` runs pending."""
    planner = Planner(Settings(history_limit=history))
    ops: list[Put] = []
    for n in range(jobs):
        name = f"job-{n:05d}"
        body = {"name": name, "command": f"/usr/local/bin/report --part {n} --verbose", "owner": "ops@example.com",
                "schedule": f"R/{format_ms(T0 + (n * 600_000) // jobs)}/PT10M", "retries": 2, "cpus": 0.1,
                "mem": 64, "description": "a nightly report of moderate length", "epsilon": "PT60S"}
        planner.put_job(body, "iso8601", T0)
        record = planner.jobs[name]
        for k in range(history):
            due = T0 - (k + 1) * 600_000
            record.remember({"taskId": f"ct:{due}:0:{name}:", "due": due, "trigger": "schedule", "attempt": 0,
                             "status": "success", "end": due + 2_500, "start": due + 40,
                             "agentId": "fa8741ca-cd02-46fb-a59f-e1362db9e6a6-S1", "host": "agent-17.example.com",
                             "message": "Command exited with status 0"}, history)
        ops.append(Put(job_path(name), dump(record.to_store())))
    for n in range(runs):
        run = Run(f"job-{n % jobs:05d}", T0 + 600_000)
        ops.append(Put(run_path(run.key), dump(run.to_json())))
    ops.append(Put("framework_id", b"fa8741ca-cd02-46fb-a59f-e1362db9e6a6-0000"))
    return ops


@defer.inlineCallbacks
def run(reactor: Any, options: argparse.Namespace) -> Any:
    ensemble = ZooKeeperEnsemble(1)
    ensemble.start_blocking()
    try:
        url = parse_zk_url(ensemble.url("/"))
        writer = ZooKeeper(reactor, url, 10.0)
        yield writer.start()
        ops = records(options.jobs, options.runs, options.history)
        size = sum(len(op.value) for op in ops)
        started = time.perf_counter()
        store = ZooKeeperStateStore(writer, ROOT)
        yield store.load()
        yield defer.gatherResults([store.commit(part) for part in W.split(ops, W.MAX_COMMIT_BYTES)])
        write_s = time.perf_counter() - started
        yield writer.stop()
        print(f"wrote {len(ops)} records ({size / 2**20:.1f} MB) in {write_s:.1f}s", flush=True)

        # A new leader: its own session and store, then what CronService does before it registers.
        started = time.perf_counter()
        reader = ZooKeeper(reactor, url, 10.0)
        yield reader.start()
        fresh = ZooKeeperStateStore(reader, ROOT)
        yield fresh.load()
        read_s = time.perf_counter() - started
        mark = time.perf_counter()
        framework_id, jobs, runs = yield read_state(fresh)
        parse_s = time.perf_counter() - mark
        mark = time.perf_counter()
        planner = Planner(Settings(history_limit=options.history))
        planner.recover(jobs, runs, T0 + 590_000)
        recover_s = time.perf_counter() - mark
        ready_s = time.perf_counter() - started
        yield reader.stop()
        assert framework_id and len(planner.jobs) == options.jobs and not planner.problems, planner.problems[:3]
        print(f"session + subtree read {read_s:.2f}s, records parsed {parse_s:.2f}s, planner rebuilt {recover_s:.2f}s")
        print(f"jobs={options.jobs} runs={len(planner.runs)} mb={size / 2**20:.1f} read_s={read_s:.2f} "
              f"parse_s={parse_s:.2f} recover_s={recover_s:.2f} ready_s={ready_s:.2f}")
    finally:
        ensemble.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000, help="runs pending (a burst recorded ahead)")
    parser.add_argument("--history", type=int, default=10, help="runs kept in each job's history")
    options = parser.parse_args()
    task.react(lambda reactor: run(reactor, options))


if __name__ == "__main__":
    main()
