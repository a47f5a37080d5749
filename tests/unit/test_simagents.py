"""The simulated agents of the benchmarks answer what the master sends as agents do (bench/simagents.py)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import attrs
from twisted.internet import task
from twisted.trial import unittest

from mesostw.agent.pb import AgentRemote
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.model.task import TaskInfo
from tests.helpers.cluster import command_task

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "simagents.py")
_spec = importlib.util.spec_from_file_location("simagents", _PATH)
assert _spec is not None and _spec.loader is not None
simagents = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(simagents)


class RecordingLink:
    """What a simulated agent sends to the master."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, Any]] = []

    def statusUpdates(self, updates: Any) -> None:
        self.updates += list(updates)


class SimAgentTests(unittest.TestCase):
    def setUp(self) -> None:
        self.counters = simagents.Counters()
        self.agent = simagents.SimAgent(3, "sim.example", Resources.parse("cpus:4;mem:1024"), task.Clock(),
                                        self.counters, churn=True)
        self.agent.info = attrs.evolve(self.agent.info, id="S3")
        self.link = RecordingLink()
        self.agent.link = self.link  # type: ignore[assignment]
        self.framework = FrameworkInfo(user="u", name="f", id="F1")

    def launch(self, name: str) -> None:
        info = TaskInfo.from_json({**command_task(name, "sleep 1"), "agent_id": {"value": "S3"}})
        self.agent.runTasks(self.framework, [info])

    def test_every_message_of_the_master_has_a_handler(self) -> None:
        """AgentRemote finds a handler on a simulated agent for every message the master sends."""
        remote = AgentRemote(self.agent)  # type: ignore[arg-type]
        self.assertTrue(all(callable(handler) for handler in remote.handlers.values()))

    def test_running_then_churn_or_finish(self) -> None:
        """A task runs at once; an acknowledged TASK_RUNNING is followed by another (churn), a short task's by
        TASK_FINISHED; updates not acknowledged are sent again when the agent (re-)registers."""
        self.launch("long-1")
        self.launch(simagents.SHORT + "1")
        self.assertEqual([s.state for _, s in self.link.updates], [T.RUNNING, T.RUNNING])
        first = list(self.link.updates)
        self.agent.acknowledge([("F1", s.task_id, s.uuid) for _, s in first])
        self.assertEqual([(s.task_id, s.state) for _, s in self.link.updates[2:]],
                         [("long-1", T.RUNNING), (simagents.SHORT + "1", T.FINISHED)])
        self.assertEqual(self.counters.acknowledged, 2)
        self.agent._up(self.link, again=True)  # type: ignore[arg-type]
        self.assertEqual(len(self.link.updates), 6)  # the two unacknowledged ones again
