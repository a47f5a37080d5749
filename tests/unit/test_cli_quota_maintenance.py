"""``mesostw quota``, ``maintenance``, ``drain`` and ``agents deactivate|reactivate``: the calls they make,
their tables and JSON, and their errors. Against real daemons they run in
``tests/integration/test_quota_maintenance.py``."""

from __future__ import annotations

import io
import json
import os
from typing import Any

from twisted.trial import unittest

from mesostw.cli import http, main
from mesostw.cli.errors import UsageError
from mesostw.cli.maintenance import duration, machine, when
from tests.unit.test_cli_operator import Canned

STATUS = {"infos": [], "configs": [{"role": "dev", "guarantees": {"cpus": {"value": 1.0}},
                                    "limits": {"cpus": {"value": 2.0}, "mem": {"value": 512.0}}},
                                   {"role": "ops", "limits": {"gpus": {"value": 0.0}}}]}
ROLES = {"roles": [{"name": "dev", "quota": {"consumed": {"cpus": 0.5}}}, {"name": "ops"}]}
SCHEDULE = {"windows": [{"machine_ids": [{"hostname": "h1"}, {"hostname": "h2", "ip": "10.0.0.2"}],
                         "unavailability": {"start": {"nanoseconds": 0}, "duration": {"nanoseconds": 7200 * 10**9}}}]}
CLUSTER = {"draining_machines": [{"id": {"hostname": "h1"}, "statuses": [
    {"status": "ACCEPT", "framework_id": {"value": "F1"}, "timestamp": {"nanoseconds": 5}}]}],
    "down_machines": [{"ip": "10.0.0.3"}]}


class CommandCase(unittest.TestCase):
    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return main.run([*argv, "--master", "127.0.0.1:5050"], out, err), out.getvalue(), err.getvalue()

    def canned(self, **answers: Any) -> Canned:
        canned = Canned(answers)
        self.patch(http, "post_json", canned.post_json)
        self.patch(http, "get_json", lambda url, params=None, timeout=10.0: ROLES)
        return canned


class QuotaCommandTests(CommandCase):
    def test_table(self) -> None:
        """One row per role: guarantees, limits and what it consumes (from /roles)."""
        self.canned(GET_QUOTA={"type": "GET_QUOTA", "get_quota": {"status": STATUS}})
        code, out, err = self.run_cli("quota")
        self.assertEqual((code, err), (0, ""))
        header, dev, ops = out.splitlines()
        self.assertEqual(header.split(), ["ROLE", "GUARANTEES", "LIMITS", "CONSUMED"])
        self.assertEqual(dev.split(), ["dev", "cpus=1", "cpus=2,mem=512", "cpus=0.5"])
        self.assertEqual(ops.split(), ["ops", "-", "gpus=0", "-"])
        code, out, _ = self.run_cli("quota", "show", "--json")
        self.assertEqual((code, json.loads(out)), (0, STATUS))

    def test_set_and_remove(self) -> None:
        """set sends one QuotaConfig (and force when asked); remove sends the role alone."""
        canned = self.canned(UPDATE_QUOTA=None)
        code, out, err = self.run_cli("quota", "set", "dev", "--guarantee", "cpus=1,mem=256", "--limit", "cpus:2",
                                      "--force")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(canned.calls[-1], {"type": "UPDATE_QUOTA", "update_quota": {"force": True, "quota_configs": [
            {"role": "dev", "guarantees": {"cpus": {"value": 1.0}, "mem": {"value": 256.0}},
             "limits": {"cpus": {"value": 2.0}}}]}})
        self.assertIn("guarantees cpus=1,mem=256, limits cpus=2", out)
        self.assertEqual(self.run_cli("quota", "remove", "dev")[0], 0)
        self.assertEqual(canned.calls[-1]["update_quota"], {"quota_configs": [{"role": "dev"}]})

    def test_errors(self) -> None:
        """Bad amounts and a set without amounts are usage errors (exit 2); the master's refusal is one line
        on stderr (exit 1)."""
        self.canned(UPDATE_QUOTA=http.HTTPStatusError(400, "Invalid QuotaConfig: role 'x' is bad", "url"))
        code, _, err = self.run_cli("quota", "set", "dev", "--limit", "cpus=lots")
        self.assertEqual(code, 2)
        self.assertIn("bad limit 'cpus=lots'", err)
        self.assertEqual(self.run_cli("quota", "set", "dev")[0], 2)
        code, _, err = self.run_cli("quota", "set", "x", "--limit", "cpus=1")
        self.assertEqual((code, err), (1, "mesostw quota set: Invalid QuotaConfig: role 'x' is bad\n"))


class MaintenanceCommandTests(CommandCase):
    def test_schedule_and_status_tables(self) -> None:
        """The schedule: one row per machine with its window; the status: DRAINING machines with the
        frameworks' answers, then DOWN ones."""
        self.canned(GET_MAINTENANCE_SCHEDULE={"get_maintenance_schedule": {"schedule": SCHEDULE}},
                    GET_MAINTENANCE_STATUS={"get_maintenance_status": {"status": CLUSTER}})
        code, out, _ = self.run_cli("maintenance")
        header, h1, h2 = out.splitlines()
        self.assertEqual(header.split(), ["MACHINE", "START", "DURATION"])
        self.assertEqual((h1.split()[0], h1.split()[-1]), ("h1", "2hrs"))
        self.assertEqual(h2.split()[0], "h2/10.0.0.2")
        code, out, _ = self.run_cli("maintenance", "status")
        self.assertEqual([line.split() for line in out.splitlines()],
                         [["MACHINE", "MODE", "INVERSE", "OFFER", "ANSWERS"], ["h1", "DRAINING", "F1=ACCEPT"],
                          ["10.0.0.3", "DOWN", "-"]])
        self.assertEqual(json.loads(self.run_cli("maintenance", "schedule", "--json")[1]), SCHEDULE)

    def test_schedule_set_down_up(self) -> None:
        """set --machines builds one window; set FILE sends the file's schedule; down and up send MachineIDs."""
        canned = self.canned(UPDATE_MAINTENANCE_SCHEDULE=None, START_MAINTENANCE=None, STOP_MAINTENANCE=None)
        code, out, err = self.run_cli("maintenance", "schedule", "set", "--machines", "h1,10.0.0.2,h3/10.0.0.3",
                                      "--start", "1000", "--duration", "90m")
        self.assertEqual((code, err), (0, ""))
        window = canned.calls[-1]["update_maintenance_schedule"]["schedule"]["windows"][0]
        self.assertEqual(window["machine_ids"], [{"hostname": "h1"}, {"ip": "10.0.0.2"},
                                                 {"hostname": "h3", "ip": "10.0.0.3"}])
        self.assertEqual(window["unavailability"], {"start": {"nanoseconds": 1000 * 10**9},
                                                    "duration": {"nanoseconds": 5400 * 10**9}})
        path = os.path.join(self.mktemp())
        with open(path, "w") as f:
            json.dump(SCHEDULE, f)
        self.assertEqual(self.run_cli("maintenance", "schedule", "set", path)[0], 0)
        self.assertEqual(canned.calls[-1]["update_maintenance_schedule"]["schedule"], SCHEDULE)
        self.assertEqual(self.run_cli("maintenance", "down", "h1", "10.0.0.2")[0], 0)
        self.assertEqual(canned.calls[-1], {"type": "START_MAINTENANCE", "start_maintenance": {
            "machines": [{"hostname": "h1"}, {"ip": "10.0.0.2"}]}})
        self.assertEqual(self.run_cli("maintenance", "up", "h1")[0], 0)
        self.assertEqual(canned.calls[-1]["type"], "STOP_MAINTENANCE")
        self.assertEqual(self.run_cli("maintenance", "schedule", "set", "/nonexistent/file")[0], 1)
        self.assertEqual(self.run_cli("maintenance", "schedule", "set")[0], 2)

    def test_parsing(self) -> None:
        """Durations, times and machines as people type them."""
        self.assertEqual((duration("30s"), duration("5m"), duration("2h"), duration("10mins")), (30, 300, 7200, 600))
        self.assertEqual((when("now", now=50.0), when("+1h", now=50.0), when("7")), (50.0, 3650.0, 7.0))
        self.assertEqual(when("1970-01-01T00:01:00+00:00"), 60.0)
        self.assertEqual(machine("h1/10.0.0.1"), {"hostname": "h1", "ip": "10.0.0.1"})
        for bad in ("soon", "-5m"):
            self.assertRaises(UsageError, duration, bad)
        self.assertRaises(UsageError, when, "tomorrowish")
        self.assertRaises(UsageError, machine, "/")


class AgentCommandTests(CommandCase):
    def test_drain_deactivate_reactivate(self) -> None:
        """drain sends the agent, its grace period (protobuf's Duration) and mark_gone; deactivate and reactivate
        their calls, with --master before or after the action."""
        canned = self.canned(DRAIN_AGENT=None, DEACTIVATE_AGENT=None, REACTIVATE_AGENT=None)
        code, out, err = self.run_cli("drain", "S1", "--grace", "2m", "--mark-gone")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(canned.calls[-1], {"type": "DRAIN_AGENT", "drain_agent": {
            "agent_id": {"value": "S1"}, "max_grace_period": "120s", "mark_gone": True}})
        self.assertIn("marked gone", out)
        self.assertEqual(self.run_cli("agents", "deactivate", "S1")[0], 0)
        self.assertEqual(canned.calls[-1], {"type": "DEACTIVATE_AGENT",
                                            "deactivate_agent": {"agent_id": {"value": "S1"}}})
        out_, err_ = io.StringIO(), io.StringIO()
        self.assertEqual(main.run(["agents", "--master", "127.0.0.1:5050", "reactivate", "S1"], out_, err_), 0)
        self.assertEqual(canned.calls[-1]["type"], "REACTIVATE_AGENT")

    def test_refusal(self) -> None:
        """The master's refusal is one line on stderr and exit 1."""
        self.canned(REACTIVATE_AGENT=http.HTTPStatusError(400, "Agent 'S1' is still in the DRAINING state", "url"))
        code, _, err = self.run_cli("agents", "reactivate", "S1")
        self.assertEqual((code, err), (1, "mesostw agents reactivate: Agent 'S1' is still in the DRAINING state\n"))

    def test_drain_states_in_the_agents_table(self) -> None:
        """mesostw agents shows a drained agent's drain state."""
        agents = {"agents": [{"agent_info": {"hostname": "h1", "port": 1, "id": {"value": "S1"}}, "active": False,
                              "deactivated": True, "drain_info": {"state": "DRAINED", "config": {}}}]}
        self.canned(GET_AGENTS={"get_agents": agents})
        _, out, _ = self.run_cli("agents")
        self.assertEqual(out.splitlines()[1].split()[:3], ["S1", "h1:1", "drained"])
