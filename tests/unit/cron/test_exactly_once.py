"""Exactly once per slot across crashes of the framework: a master model, random interleavings, and the
invariants checked after each (no slot runs twice, none is lost, every one is accounted for)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from frameworks.cron import effects as fx
from frameworks.cron.planner import Settings
from frameworks.cron.runs import parse_task_id
from mesostw.model import task as T
from mesostw.model.task import TaskStatus, new_uuid
from tests.helpers.cron import MINUTE, T0, Harness, job

JOBS = {  # name: (schedule, extra fields, slots)
    "a": ("R8/2024-05-01T12:01:00Z/PT1M", {}, 8),
    "b": ("R6/2024-05-01T12:01:30Z/PT2M", {"epsilon": "PT20S"}, 6),
    "c": ("R5/2024-05-01T12:02:00Z/PT3M", {"retries": 1}, 5),
    "d": ("R10/2024-05-01T12:01:10Z/PT30S", {"epsilon": "PT15S", "concurrent": True}, 10),
}


#: Steps: 0 time passes, 1 an offer, 2 a task starts, 3 a task ends, 4 the store starts lagging, 5 it
#: catches up, 6 the framework crashes and another instance takes over (weighted towards progress).
STEPS = (0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6)


class MasterModel:
    """What the master knows about the framework's tasks, whichever instance of the framework leads."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.state: dict[str, str] = {}  # every task ever launched, with its latest state
        self.forgotten: set[str] = set()  # terminal and acknowledged: the master no longer knows them
        self.unacked: dict[str, TaskStatus] = {}
        self.finished: list[str] = []
        self.violations: list[str] = []
        self.seen = 0

    def run_key(self, task_id: str) -> str:
        parsed = parse_task_id(task_id)
        assert parsed is not None
        return f"{parsed[2]}:{parsed[0]}"

    def deliver(self, leader: Harness, status: TaskStatus) -> None:
        if status.uuid is not None and status.state in T.TERMINAL_STATES:
            self.unacked[status.task_id] = status
        leader.apply(leader.planner.status(status, leader.now))

    def change(self, leader: Harness, task_id: str, state: str) -> None:
        self.state[task_id] = state
        if state == T.FINISHED:
            self.finished.append(task_id)
        self.deliver(leader, TaskStatus(task_id, state, source=T.SOURCE_EXECUTOR, agent_id="S1",
                                        uuid=new_uuid(), timestamp=leader.now / 1000))

    def react(self, leader: Harness) -> None:
        """Carry out what the framework asked for since last time."""
        while self.seen < len(leader.actions):
            action = leader.actions[self.seen]
            self.seen += 1
            if isinstance(action, fx.Launch):
                for task in action.tasks:
                    key = self.run_key(task.task_id)
                    live = [t for t, s in self.state.items()
                            if self.run_key(t) == key and s not in T.TERMINAL_STATES]
                    if live:
                        self.violations.append(f"{task.task_id} launched while {live} still live")
                    if task.task_id in self.state:
                        self.violations.append(f"{task.task_id} launched twice")
                    self.state[task.task_id] = T.STAGING
            elif isinstance(action, fx.Acknowledge):
                pending = self.unacked.get(action.status.task_id)
                if pending is not None and pending.uuid == action.status.uuid:
                    del self.unacked[action.status.task_id]
                    self.forgotten.add(action.status.task_id)
            elif isinstance(action, fx.Kill):
                if self.state.get(action.task_id) in (T.STAGING, T.RUNNING):
                    self.change(leader, action.task_id, T.KILLED)
            elif isinstance(action, fx.Reconcile):
                ids = action.task_ids or tuple(t for t in self.state if t not in self.forgotten)
                for task_id in ids:
                    state = self.state.get(task_id) if task_id not in self.forgotten else None
                    answer = TaskStatus(task_id, state or T.LOST, source=T.SOURCE_MASTER,
                                        reason=T.REASON_RECONCILIATION, agent_id="S1" if state else None,
                                        timestamp=leader.now / 1000)
                    leader.apply(leader.planner.status(answer, leader.now))

    def resend(self, leader: Harness) -> None:
        """A new leader subscribed: agents retry the terminal updates nobody acknowledged."""
        for status in list(self.unacked.values()):
            leader.apply(leader.planner.status(status, leader.now))


def simulate(seed: int, steps: list[int]) -> tuple[Harness, MasterModel]:
    rng = random.Random(seed)
    master = MasterModel(rng)
    leader = Harness(Settings(lookahead_ms=5_000, retry_delay_ms=10_000))
    for name, (schedule, extra, _) in JOBS.items():
        leader.put(job(name, schedule=schedule, **extra))

    def live(state: str) -> list[str]:
        return sorted(t for t, s in master.state.items() if s == state)

    for step in steps:
        if step == 0:
            leader.advance(rng.randint(1, 40) * 1000)
        elif step == 1:
            leader.offer()
        elif step == 2 and live(T.STAGING):
            master.change(leader, rng.choice(live(T.STAGING)), T.RUNNING)
        elif step == 3 and live(T.RUNNING):
            master.change(leader, rng.choice(live(T.RUNNING)), rng.choice([T.FINISHED, T.FINISHED, T.FAILED]))
        elif step == 4:
            leader.durable = False  # the store lags: writes and what waits on them are held back
        elif step == 5:
            leader.release()
        elif step == 6:
            master.seen = len(leader.actions)
            leader = leader.recover()  # held-back writes are lost
            master.seen = 0
            master.resend(leader)
        master.react(leader)
    leader.release()
    master.react(leader)
    end = T0 + 60 * MINUTE
    while leader.now < end:  # let everything finish: offers, starts and successes
        leader.advance(5_000)
        leader.offer()
        master.react(leader)
        for task_id in live(T.STAGING):
            master.change(leader, task_id, T.RUNNING)
        for task_id in live(T.RUNNING):
            master.change(leader, task_id, T.FINISHED)
        master.react(leader)
    return leader, master


class ExactlyOnceTests(unittest.TestCase):
    @settings(max_examples=60, deadline=None, database=None)
    @given(st.integers(0, 2**32), st.lists(st.sampled_from(STEPS), min_size=20, max_size=250))
    def test_every_slot_exactly_once_across_crashes(self, seed: int, steps: list[int]) -> None:
        """Whatever the interleaving of time, offers, task ends, store lag and crashes: no run has two live
        tasks, no run finishes twice, and each job's slots are all accounted for (succeeded, failed after
        its retries, or missed) with successes counted once each."""
        leader, master = simulate(seed, steps)
        self.assertEqual(master.violations, [])
        finished_runs = [master.run_key(t) for t in master.finished]
        self.assertEqual(len(finished_runs), len(set(finished_runs)), "a run finished twice")
        for name, (_, _, slots) in JOBS.items():
            counters = leader.record(name).counters
            successes = len([k for k in finished_runs if k.startswith(name + ":")])
            self.assertEqual(counters.success_count, successes, name)
            self.assertEqual(counters.success_count + counters.error_count + counters.missed_count, slots, name)
        self.assertEqual(leader.stored_runs(), {})

    def test_a_crash_with_everything_in_flight(self) -> None:
        """One hand-picked history: launch, lag, finish (not yet written), crash, recover: counted once."""
        leader, master = simulate(7, [0, 0, 0, 1, 2, 4, 3, 3, 6, 0, 1, 2, 3, 6, 5, 0, 1])
        self.assertEqual(master.violations, [])
        for name, (_, _, slots) in JOBS.items():
            counters = leader.record(name).counters
            self.assertEqual(counters.success_count + counters.error_count + counters.missed_count, slots, name)
