"""``mesostw agents``, ``events`` and ``mark-gone``: tables and lines from v1 JSON, the RecordIO reader, and their
errors. Against real daemons they run in ``tests/integration/test_operator_api.py``."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from twisted.trial import unittest

from mesostw.cli import http, main, operator_api
from mesostw.cli.errors import CLIError
from mesostw.http import recordio
from mesostw.model.attributes import attributes_to_json
from mesostw.model.resources import Resources

AGENTS = {
    "agents": [
        {"agent_info": {"hostname": "h1", "port": 5051, "id": {"value": "S1"},
                        "attributes": attributes_to_json({"rack": "r1", "zone": frozenset({"a"})})},
         "active": True, "version": "1", "total_resources": Resources.parse("cpus:4;mem:4096;disk:100").to_json(),
         "allocated_resources": Resources.parse("cpus:0.5;mem:128").to_json("web")},
        {"agent_info": {"hostname": "h2", "port": 5052, "id": {"value": "S2"}}, "active": False, "version": "1",
         "total_resources": Resources.parse("cpus:2;mem:512;cpus(ops):1").to_json()},
    ],
    "recovered_agents": [{"hostname": "h3", "port": 5053, "id": {"value": "S3"},
                          "resources": Resources.parse("cpus:8;mem:1024").to_json()}],
}


class Canned:
    """Stands in for the master: answers each call from ``answers`` and records the bodies."""

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def post_json(self, url: str, body: dict[str, Any], timeout: float = 10.0) -> Any:
        self.calls.append(body)
        answer = self.answers[body["type"]]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Stream(io.BytesIO):
    """An open response body."""

    def __init__(self, events: list[dict[str, Any]]):
        super().__init__(b"".join(recordio.encode_json(e) for e in events))


class OperatorCommandTests(unittest.TestCase):
    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return main.run([*argv, "--master", "127.0.0.1:5050"], out, err), out.getvalue(), err.getvalue()

    def canned(self, **answers: Any) -> Canned:
        canned = Canned(answers)
        self.patch(http, "post_json", canned.post_json)
        return canned

    def test_agents_table(self) -> None:
        """One row per agent: used/total of cpus, mem and disk (every role together), state and attributes;
        recovered agents last."""
        self.canned(GET_AGENTS={"type": "GET_AGENTS", "get_agents": AGENTS})
        code, out, err = self.run_cli("agents")
        self.assertEqual((code, err), (0, ""))
        header, first, second, third = out.splitlines()
        self.assertEqual(header.split(), ["ID", "ADDRESS", "STATE", "CPUS", "MEM", "DISK", "ATTRIBUTES"])
        self.assertEqual(first.split(), ["S1", "h1:5051", "active", "0.5/4", "128/4096", "0/100", "rack=r1", "zone=a"])
        self.assertEqual(second.split(), ["S2", "h2:5052", "inactive", "0/3", "0/512", "0/0"])
        self.assertEqual(third.split()[:3], ["S3", "h3:5053", "recovered"])

    def test_agents_json(self) -> None:
        """--json prints GET_AGENTS's answer as it came."""
        self.canned(GET_AGENTS={"type": "GET_AGENTS", "get_agents": AGENTS})
        code, out, _ = self.run_cli("agents", "--json")
        self.assertEqual((code, json.loads(out)), (0, AGENTS))

    def test_no_agents(self) -> None:
        """Without agents, a sentence rather than an empty table."""
        self.canned(GET_AGENTS={"type": "GET_AGENTS", "get_agents": {"agents": [], "recovered_agents": []}})
        self.assertEqual(self.run_cli("agents")[1], "No agents are registered.\n")

    def test_a_master_without_the_api(self) -> None:
        """A master answering 404 (an old one) is named as not serving the API; exit status 1."""
        self.canned(GET_AGENTS=http.HTTPStatusError(404, "No such endpoint: /api/v1", "http://m/api/v1"))
        code, out, err = self.run_cli("agents")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, "mesostw agents: http://127.0.0.1:5050 does not serve the v1 operator API (/api/v1)\n")

    def test_mark_gone(self) -> None:
        """mark-gone sends MARK_AGENT_GONE; the master's refusal is reported as it says it."""
        canned = self.canned(MARK_AGENT_GONE=None)
        code, out, _ = self.run_cli("mark-gone", "S1")
        self.assertEqual(code, 0)
        self.assertIn("Agent S1 is gone", out)
        self.assertEqual(canned.calls, [{"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "S1"}}}])
        self.canned(MARK_AGENT_GONE=http.HTTPStatusError(404, "Agent 'S9' not found", "http://m/api/v1"))
        self.assertEqual(self.run_cli("mark-gone", "S9")[2], "mesostw mark-gone: Agent 'S9' not found\n")

    def events(self, events: list[dict[str, Any]], *argv: str) -> tuple[int, str, str]:
        opened: list[Any] = []

        def open_stream(url: str, body: Any, timeout: float) -> Stream:
            opened.append((url, body, timeout))
            return Stream(events)

        self.patch(http, "open_stream", open_stream)
        result = self.run_cli("events", *argv)
        self.assertEqual(opened, [("http://127.0.0.1:5050/api/v1", {"type": "SUBSCRIBE"}, 75.0)])
        return result

    def test_events_lines(self) -> None:
        """One line per event, heartbeats hidden, until N events (-n); without -n, a stream that ends is an
        error (the master went away)."""
        events = [
            {"type": "SUBSCRIBED", "subscribed": {"get_state": {"get_agents": {"agents": [{}]}},
                                                  "heartbeat_interval_seconds": 15}},
            {"type": "HEARTBEAT"},
            {"type": "TASK_ADDED", "task_added": {"task": {"task_id": {"value": "t1"}, "framework_id": {"value": "F"},
                                                           "agent_id": {"value": "S1"}, "state": "TASK_STAGING"}}},
            {"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": "F"}, "state": "TASK_FAILED",
                                                      "status": {"task_id": {"value": "t1"}, "state": "TASK_FAILED",
                                                                 "message": "exit 3"}}},
            {"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "S1"}}},
        ]
        code, out, _ = self.events(events, "-n", "3")
        lines = out.splitlines()
        self.assertEqual(code, 0)
        self.assertEqual([line.split()[2] for line in lines], ["SUBSCRIBED", "TASK_ADDED", "TASK_UPDATED"])
        self.assertTrue(lines[0].endswith("1 agent(s), 0 framework(s), 0 live task(s); heartbeat every 15s"))
        self.assertTrue(lines[1].endswith("task t1 of framework F on agent S1: TASK_STAGING"))
        self.assertTrue(lines[2].endswith("task t1 of framework F: TASK_FAILED (exit 3)"))
        code, out, err = self.events(events, "--heartbeats")
        self.assertEqual(code, 1)
        self.assertEqual(len(out.splitlines()), 5)
        self.assertIn("ended the event stream", err)

    def test_events_json(self) -> None:
        """--json prints each event as one line of JSON."""
        events = [{"type": "SUBSCRIBED", "subscribed": {}}, {"type": "AGENT_REMOVED", "agent_removed": {}}]
        code, out, _ = self.events(events, "--json", "-n", "2")
        self.assertEqual((code, [json.loads(line) for line in out.splitlines()]), (0, events))

    def test_garbled_stream(self) -> None:
        """A stream that is not RecordIO of JSON is a clear error."""
        self.patch(http, "open_stream", lambda url, body, timeout: io.BytesIO(b"nonsense\n"))
        code, _, err = self.run_cli("events")
        self.assertEqual(code, 1)
        self.assertIn("not RecordIO", err)
        self.patch(http, "open_stream", lambda url, body, timeout: io.BytesIO(b"3\nabc"))
        self.assertIn("not JSON", self.run_cli("events")[2])

    def test_lost_stream(self) -> None:
        """A stream silent past five heartbeats is reported lost."""
        class Silent(io.BytesIO):
            def readline(self, size: int | None = -1) -> bytes:
                raise TimeoutError()

        self.patch(http, "open_stream", lambda url, body, timeout: Silent())
        code, _, err = self.run_cli("events")
        self.assertEqual(code, 1)
        self.assertIn("no event nor heartbeat", err)

    def test_usage(self) -> None:
        """-n must be a positive number; --help works for each command."""
        code, _, err = self.run_cli("events", "-n", "0")
        self.assertEqual(code, 2)
        self.assertIn("must be at least 1", err)
        for command in ("agents", "events", "mark-gone"):
            printed = io.StringIO()
            self.patch(sys, "stdout", printed)
            code, _, _ = self.run_cli(command, "--help")
            self.assertEqual(code, 0)
            self.assertIn(f"usage: mesostw {command}", printed.getvalue())

    def test_describe_every_event(self) -> None:
        """Every event type of master.proto gets a line naming what it is about."""
        self.assertIn("framework F (fw, role *): connected", operator_api.describe(
            {"type": "FRAMEWORK_UPDATED", "framework_updated": {"framework": {
                "framework_info": {"id": {"value": "F"}, "name": "fw"}, "connected": True}}}))
        self.assertEqual(operator_api.describe({"type": "FRAMEWORK_REMOVED", "framework_removed": {
            "framework_info": {"id": {"value": "F"}, "name": "fw"}}}), "framework F (fw)")
        self.assertEqual(operator_api.describe({"type": "AGENT_ADDED", "agent_added": {"agent": {
            "agent_info": {"id": {"value": "S1"}, "hostname": "h", "port": 1}}}}), "agent S1 at h:1")
        self.assertEqual(operator_api.describe({"type": "HEARTBEAT"}), "")
        self.assertRaises(CLIError, list, operator_api.read_records(io.BytesIO(b"x" * 40)))
