"""The v1 operator API on real daemons: a SUBSCRIBE stream that follows a task from TASK_ADDED to
TASK_FINISHED, MARK_AGENT_GONE on a real agent (durable across a master restart), the agent's own API,
and ``mesostw agents`` / ``mesostw events`` against them."""

from __future__ import annotations

import base64
import json
import subprocess
from io import BytesIO
from typing import Any

from twisted.internet import defer, protocol, reactor, threads
from twisted.trial import unittest
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers

from mesostw.http import recordio
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cluster import command_task
from tests.helpers.processes import MESOSTW, ProcessCluster, environment, get_json, http, wait_for
from tests.integration.test_core_cluster import LaunchingScheduler

JSON = {"Content-Type": "application/json"}


class EventReader(protocol.Protocol):
    """Decodes a SUBSCRIBE response's RecordIO records into :attr:`events` as they arrive."""

    def __init__(self) -> None:
        self.decoder = recordio.Decoder()
        self.events: list[dict[str, Any]] = []
        self.ended: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.events.extend(json.loads(record) for record in self.decoder.feed(data))

    def connectionLost(self, reason: Any) -> None:
        self.ended.callback(None)

    def close(self) -> defer.Deferred:
        if not self.ended.called and self.transport is not None:
            self.transport.stopProducing()
        return self.ended

    def task_states(self, task_id: str) -> list[tuple[str, str]]:
        out = []
        for event in self.events:
            if event["type"] == "TASK_ADDED" and event["task_added"]["task"]["task_id"]["value"] == task_id:
                out.append(("TASK_ADDED", event["task_added"]["task"]["state"]))
            elif event["type"] == "TASK_UPDATED" and event["task_updated"]["status"]["task_id"]["value"] == task_id:
                out.append(("TASK_UPDATED", event["task_updated"]["state"]))
        return out


class OperatorAPITestCase(unittest.TestCase):
    timeout = 180
    agents = 1
    master_args: list[str] = []

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = ProcessCluster(self, agents=self.agents, master_args=self.master_args)
        # twistd writes the master's log there; the operator API serves it as /master/log.
        self.cluster.master.args.append(f"--external_log_file={self.cluster.master.log_path}")
        yield self.cluster.start()

    @defer.inlineCallbacks
    def call(self, body: dict[str, Any], url: str | None = None) -> Any:
        """(code, decoded JSON or None) of one operator API call."""
        code, data, _ = yield http("POST", url or self.cluster.url("/api/v1"), json.dumps(body).encode(), JSON)
        return code, (json.loads(data) if data else None)

    @defer.inlineCallbacks
    def subscribe(self) -> Any:
        response = yield Agent(reactor).request(b"POST", self.cluster.url("/api/v1").encode(),
                                                Headers({b"Content-Type": [b"application/json"]}),
                                                FileBodyProducer(BytesIO(b'{"type": "SUBSCRIBE"}')))
        self.assertEqual(response.code, 200)
        reader = EventReader()
        response.deliverBody(reader)
        self.addCleanup(reader.close)
        yield wait_for(lambda: reader.events, 30, what="SUBSCRIBED")
        self.assertEqual(reader.events[0]["type"], "SUBSCRIBED")
        return reader

    def framework(self, scheduler: Any, **info: Any) -> MesosSchedulerDriver:
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="root", name="operator-api", **info),
                                      self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        return driver

    def mesostw(self, *args: str) -> defer.Deferred:
        return threads.deferToThread(subprocess.run, [MESOSTW, *args, f"--master={self.cluster.master_address}"],
                                     capture_output=True, text=True, timeout=60, env=environment())


class SubscribeTests(OperatorAPITestCase):
    @defer.inlineCallbacks
    def test_a_task_from_added_to_finished(self):
        """A SUBSCRIBE stream sees the framework, then its task TASK_ADDED, TASK_RUNNING and TASK_FINISHED, in
        order; GET_TASKS then lists it completed."""
        reader = yield self.subscribe()
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("watched", "true")]
        self.framework(scheduler)
        yield wait_for(lambda: ("TASK_UPDATED", T.FINISHED) in reader.task_states("watched"), 60,
                       what="TASK_FINISHED on the stream")
        states = reader.task_states("watched")
        self.assertEqual(states[0], ("TASK_ADDED", T.STAGING))
        self.assertEqual(states[-1], ("TASK_UPDATED", T.FINISHED))
        self.assertIn(("TASK_UPDATED", T.RUNNING), states)
        self.assertLess(states.index(("TASK_UPDATED", T.RUNNING)), len(states) - 1)
        types = [event["type"] for event in reader.events]
        self.assertLess(types.index("FRAMEWORK_ADDED"), types.index("TASK_ADDED"))
        code, answer = yield wait_for(lambda: self.call({"type": "GET_TASKS"}).addCallback(
            lambda r: r if r[1]["get_tasks"]["completed_tasks"] else None), 30, what="the task retired")
        self.assertEqual(code, 200)
        [done] = answer["get_tasks"]["completed_tasks"]
        self.assertEqual((done["task_id"]["value"], done["state"]), ("watched", T.FINISHED))

    @defer.inlineCallbacks
    def test_master_log(self):
        """READ_FILE of /master/log reads the master's own log (--external_log_file), size first."""
        code, answer = yield self.call({"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 0}})
        self.assertEqual(code, 200)
        data = base64.b64decode(answer["read_file"]["data"])
        self.assertIn(b"listening on 127.0.0.1", data)
        self.assertGreaterEqual(answer["read_file"]["size"], len(data))

    @defer.inlineCallbacks
    def test_cli_follows_and_lists(self):
        """`mesostw events -n` prints one line per event until it has N; `mesostw agents` lists the agent and
        `--json` gives GET_AGENTS."""
        events = self.mesostw("events", "-n", "4")

        def subscribed(snapshot: dict[str, float]) -> bool:
            return snapshot["master/operator_event_stream_subscribers"] == 1.0

        yield wait_for(lambda: get_json(self.cluster.url("/metrics/snapshot")).addCallback(subscribed), 30,
                       what="mesostw events to subscribe")
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("shown", "true")]
        self.framework(scheduler)
        done = yield events
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.splitlines()
        self.assertEqual(len(lines), 4, done.stdout)
        self.assertIn("SUBSCRIBED", lines[0])
        self.assertIn("1 agent(s)", lines[0])
        self.assertTrue(any("TASK_ADDED" in line and "task shown" in line for line in lines), done.stdout)
        agents = yield self.mesostw("agents")
        self.assertEqual(agents.returncode, 0, agents.stderr)
        header, row = agents.stdout.splitlines()
        self.assertEqual(header.split(), ["ID", "ADDRESS", "STATE", "CPUS", "MEM", "DISK", "ATTRIBUTES"])
        self.assertIn("active", row.split())
        self.assertIn("/4", row)
        listed = yield self.mesostw("agents", "--json")
        self.assertEqual(len(json.loads(listed.stdout)["agents"]), 1)


class MarkGoneTests(OperatorAPITestCase):
    """A master with its registry on disk, so that a gone agent stays gone when it restarts."""

    @defer.inlineCallbacks
    def setUp(self):
        self.master_args = [f"--work_dir={self.mktemp()}"]
        yield super().setUp()

    @defer.inlineCallbacks
    def test_a_real_agent_marked_gone(self):
        """A partition-aware framework hears TASK_GONE_BY_OPERATOR; the agent shuts the task down (its own
        API says so), is refused when it comes back, and stays out after the master restarts."""
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("doomed", "sleep 600")]
        self.framework(scheduler, capabilities=frozenset({"PARTITION_AWARE"}))
        yield wait_for(lambda: T.RUNNING in scheduler.states("doomed"), 60, what="TASK_RUNNING")
        _, agents = yield self.call({"type": "GET_AGENTS"})
        [agent] = agents["get_agents"]["agents"]
        agent_id = agent["agent_info"]["id"]["value"]
        agent_url = f"http://{agent['agent_info']['hostname']}:{agent['agent_info']['port']}/api/v1"
        code, launched = yield self.call({"type": "GET_TASKS"}, agent_url)
        self.assertEqual([t["task_id"]["value"] for t in launched["get_tasks"]["launched_tasks"]], ["doomed"])

        gone = yield self.mesostw("mark-gone", agent_id)
        self.assertEqual(gone.returncode, 0, gone.stderr)
        yield wait_for(lambda: T.GONE_BY_OPERATOR in scheduler.states("doomed"), 30, what="TASK_GONE_BY_OPERATOR")
        final = [u for u in scheduler.updates if u.task_id == "doomed"][-1]
        self.assertEqual(final.reason, T.REASON_AGENT_REMOVED_BY_OPERATOR)
        _, agents = yield self.call({"type": "GET_AGENTS"})
        self.assertEqual(agents["get_agents"], {"agents": [], "recovered_agents": []})

        def killed(answer: Any) -> bool:
            tasks = answer[1]["get_tasks"]
            return not tasks["launched_tasks"] and any(t["state"] == T.KILLED for key in ("completed_tasks",
                                                                                           "terminated_tasks")
                                                       for t in tasks[key])

        yield wait_for(lambda: self.call({"type": "GET_TASKS"}, agent_url).addCallback(killed), 30,
                       what="the agent to kill the gone agent's task")
        yield wait_for(lambda: "was marked gone" in self.cluster.master.log(), 30, what="the agent refused")

        self.cluster.master.stop()
        self.cluster.master.start()
        yield wait_for(lambda: self.call({"type": "GET_AGENTS"}), 30, what="the master back")
        refusals = self.cluster.master.log().count("was marked gone")
        yield wait_for(lambda: self.cluster.master.log().count("was marked gone") > refusals, 60,
                       what="the restarted master to refuse the agent")
        _, agents = yield self.call({"type": "GET_AGENTS"})
        self.assertEqual(agents["get_agents"], {"agents": [], "recovered_agents": []})
        again = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent_id}}}
        code, answer = yield self.call(again)
        self.assertEqual((code, answer), (200, None))  # gone already, as the registry remembers
