"""``/master/state-summary`` made in the master's process: cold, with nothing changed, and right after a change.

A master core (no network: agents on links that only record, frameworks on links that drop events)
with ``--agents`` agents, ``--tasks`` running tasks spread over them and ``--frameworks`` frameworks,
and ``--completed`` finished tasks per framework in their histories (the histories keep that many).
Timed, to the last byte of the answer: ``cold_s``, the first summary; ``unchanged_s``, one with
nothing changed since the last; ``changed_s``, one right after a long task was killed (the fastest
of ``--repeat``, a task more each; all of them in ``changed_runs``). ``--profile`` prints a cProfile
of the last changed one.

    python bench/state_summary.py --agents 10000 --tasks 100000 --completed 5000
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import task  # noqa: E402
from zope.interface import implementer  # noqa: E402

from mesostw import flags as flaglib  # noqa: E402
from mesostw.allocator.hierarchical import HierarchicalAllocator  # noqa: E402
from mesostw.http import stream  # noqa: E402
from mesostw.interfaces import IFrameworkLink  # noqa: E402
from mesostw.master import state_json  # noqa: E402
from mesostw.master.flags import MASTER_FLAGS  # noqa: E402
from mesostw.master.master import Master  # noqa: E402
from mesostw.master.registry import RegistryState  # noqa: E402
from mesostw.model import task as T  # noqa: E402
from mesostw.model.info import AgentInfo, FrameworkInfo  # noqa: E402
from mesostw.model.resources import Resources  # noqa: E402
from mesostw.model.task import TaskInfo, TaskStatus  # noqa: E402
from tests.helpers.cluster import DirectAgentLink  # noqa: E402

AGENT = Resources.parse("cpus:8;mem:16384;disk:100000;ports:[31000-32000]")
TASK = Resources.parse("cpus:0.01;mem:8")


@implementer(IFrameworkLink)
class Dropping:
    """A framework's link that drops its events."""

    def send(self, event):
        pass

    def close(self):
        pass


def cluster(args) -> tuple[Master, list[str]]:
    """A master with the agents, frameworks, running and completed tasks asked for; the framework IDs."""
    clock = task.Clock()
    config = flaglib.defaults(MASTER_FLAGS, hostname="127.0.0.1", max_completed_tasks_per_framework=args.completed)
    master = Master(config, HierarchicalAllocator(clock, config.weights, randomize=False), clock, master_id="M")
    master.recover(RegistryState())
    for index in range(args.agents):
        master.registerAgent(DirectAgentLink(None, clock), AgentInfo(hostname=f"h{index}", port=5051, resources=AGENT))
    clock.advance(0)
    agents = list(master.agents)
    frameworks = [master.subscribe(Dropping(), FrameworkInfo(user="bench", name=f"f{index}"))
                  for index in range(args.frameworks)]
    tracker = master.tasks

    def run(framework_id: str, task_id: str, agent_id: str, end: str | None = None) -> None:
        info = TaskInfo.from_json({"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
                                   "resources": TASK.to_json(), "command": {"value": "sleep 1"}})
        launched = tracker.launch(framework_id, info, "bench")
        tracker.update(launched, TaskStatus(task_id, T.RUNNING, agent_id=agent_id))
        if end is not None:
            tracker.update(launched, TaskStatus(task_id, end, agent_id=agent_id))
            tracker.remove(launched)

    for n in range(args.tasks):
        run(frameworks[n % args.frameworks], f"long-{n}", agents[n % args.agents])
    for n in range(args.completed * args.frameworks):
        run(frameworks[n % args.frameworks], f"short-{n}", agents[(n * 7) % args.agents], T.FINISHED)
    return master, frameworks


def timed(master: Master) -> float:
    started = time.perf_counter()
    stream.encode(state_json.state_summary(master))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--frameworks", type=int, default=10)
    parser.add_argument("--completed", type=int, default=5000, help="finished tasks per framework (all kept)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    master, frameworks = cluster(args)
    print(f"cluster made in {time.perf_counter() - started:.1f}s", flush=True)
    cold = timed(master)
    timed(master)
    unchanged = timed(master)
    changed = []
    tracker = master.tasks
    for index in range(args.repeat):
        victim = tracker.get(frameworks[0], f"long-{index * args.frameworks}")
        assert victim is not None
        tracker.update(victim, TaskStatus(victim.task_id, T.KILLED, agent_id=victim.agent_id))
        tracker.remove(victim)
        if args.profile and index == args.repeat - 1:
            profile = cProfile.Profile()
            profile.enable()
            changed.append(timed(master))
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(20)
        else:
            changed.append(timed(master))
    print(f"changed_runs={'/'.join(f'{t:.4f}' for t in changed)}")
    print(f"agents={args.agents} tasks={args.tasks} completed={args.completed * args.frameworks} cold_s={cold:.3f} "
          f"unchanged_s={unchanged:.4f} changed_s={min(changed):.4f}")


if __name__ == "__main__":
    main()
