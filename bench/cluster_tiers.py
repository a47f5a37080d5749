"""The in-process cluster over direct links and over the real PB adapters: what the wire costs a test.

Each round starts a cluster (a master and two agents), runs a framework whose tasks all go to an
acknowledged TASK_FINISHED, and stops it; the same rounds run on both clusters. Prints milliseconds
per round for each and the ratio.

    python bench/cluster_tiers.py --rounds 50 --tasks 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mesostw.model import task as T  # noqa: E402
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task  # noqa: E402
from tests.helpers.pbcluster import PBCluster  # noqa: E402


def round_ms(cluster_class: type[Cluster], rounds: int, tasks: int) -> float:
    """Milliseconds per round on ``cluster_class``."""
    start = time.perf_counter()
    for _ in range(rounds):
        cluster = cluster_class()
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task(f"t{i}", "true", "cpus:0.01;mem:1") for i in range(tasks)]
        cluster.framework(scheduler=scheduler)
        finished = sum(1 for update in scheduler.updates if update.state == T.FINISHED)
        if finished != tasks:
            raise SystemExit(f"{cluster_class.__name__}: {finished} of {tasks} tasks finished")
        cluster.stop()
    return 1000 * (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    round_ms(PBCluster, 2, args.tasks)  # warm up imports and caches
    direct = round_ms(Cluster, args.rounds, args.tasks)
    pb = round_ms(PBCluster, args.rounds, args.tasks)
    print(f"rounds={args.rounds} tasks={args.tasks} direct_ms={direct:.2f} pb_ms={pb:.2f} ratio={pb / direct:.1f}")


if __name__ == "__main__":
    main()
