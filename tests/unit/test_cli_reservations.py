"""``mesostw reserve``, ``unreserve`` and ``volumes``: the calls they make, their tables, and their errors.
Against a real master they run in ``tests/integration/test_reservations.py``."""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.trial import unittest

from mesostw.cli import http, main
from mesostw.model.reservation import DYNAMIC, STATIC, Reservation, reservations_of
from mesostw.model.resources import Resources
from tests.unit.test_cli_operator import Canned
from tests.unit.test_reservations import reserved, volume


def agents(total: Resources, allocated: Resources = Resources()) -> dict[str, Any]:
    return {"type": "GET_AGENTS", "get_agents": {"agents": [
        {"agent_info": {"hostname": "h1", "port": 5051, "id": {"value": "S1"}}, "active": True,
         "total_resources": total.to_json(), "allocated_resources": allocated.to_json("eng")}],
        "recovered_agents": []}}


class ReservationCommandTests(unittest.TestCase):
    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return main.run([*argv, "--master", "127.0.0.1:5050"], out, err), out.getvalue(), err.getvalue()

    def canned(self, **answers: Any) -> Canned:
        canned = Canned(answers)
        self.patch(http, "post_json", canned.post_json)
        return canned

    def sent(self, canned: Canned, kind: str, field: str) -> Resources:
        [body] = [c for c in canned.calls if c["type"] == kind]
        self.assertEqual(body[kind.lower()]["agent_id"], {"value": "S1"})
        return Resources.from_json(body[kind.lower()][field])

    def test_reserve_text(self) -> None:
        """Text resources get a dynamic reservation for --role by --principal with the --labels; static
        ones (cpus(eng)) are refined."""
        canned = self.canned(RESERVE_RESOURCES=None)
        code, out, err = self.run_cli("reserve", "S1", "cpus:1;mem:64", "--role", "eng", "--principal", "ops",
                                      "--label", "team=web")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.sent(canned, "RESERVE_RESOURCES", "resources"),
                         reserved("cpus:1;mem:64", labels={"team": "web"}))
        self.assertIn("Reserved on agent S1", out)
        canned = self.canned(RESERVE_RESOURCES=None)
        self.assertEqual(self.run_cli("reserve", "S1", "cpus(eng):1", "--role", "eng/web")[0], 0)
        [key] = self.sent(canned, "RESERVE_RESOURCES", "resources").keys()
        self.assertEqual(reservations_of(key), (Reservation(STATIC, "eng"), Reservation(DYNAMIC, "eng/web")))

    def test_reserve_json(self) -> None:
        """A JSON array is sent as it is, and --json prints what was sent."""
        canned = self.canned(RESERVE_RESOURCES=None)
        code, out, _ = self.run_cli("reserve", "S1", json.dumps(reserved("cpus:1").to_json()), "--json")
        self.assertEqual(code, 0)
        self.assertEqual(self.sent(canned, "RESERVE_RESOURCES", "resources"), reserved("cpus:1"))
        self.assertEqual(Resources.from_json(json.loads(out)), reserved("cpus:1"))

    def test_usage_errors(self) -> None:
        """Missing --role, bad resources, --role with JSON and bad labels are usage errors (exit 2)."""
        self.canned()
        for argv, message in ((("reserve", "S1", "cpus:1"), "--role is required"),
                              (("reserve", "S1", "cpus:x", "--role", "eng"), "bad resources"),
                              (("reserve", "S1", "[]", "--role", "eng"), "a JSON array says it all"),
                              (("reserve", "S1", "cpus:1", "--role", "eng", "--label", "=v"), "bad label"),
                              (("unreserve", "S1"), "give the RESOURCES"),
                              (("unreserve", "S1", "--all"), "--all needs --role"),
                              (("volumes", "create", "S1", "v", "--size", "0", "--role", "eng", "--path", "d"),
                               "--size must be positive")):
            code, _, err = self.run_cli(*argv)
            self.assertEqual(code, 2, argv)
            self.assertIn(message, err)

    def test_refusals_are_reported(self) -> None:
        """The master's refusal is one line naming the command, and exit status 1."""
        self.canned(RESERVE_RESOURCES=http.HTTPStatusError(409, "Insufficient resources on agent S1", "u"))
        code, out, err = self.run_cli("reserve", "S1", "cpus:1", "--role", "eng")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, "mesostw reserve: Insufficient resources on agent S1\n")

    def test_unreserve_all(self) -> None:
        """--all unreserves every dynamic reservation of the role on the agent, volumes excepted."""
        total = Resources.parse("cpus:1;cpus(eng):1") + reserved("cpus:1;disk:64") + volume("v", 32) \
            + reserved("mem:8", role="ads")
        canned = self.canned(GET_AGENTS=agents(total), UNRESERVE_RESOURCES=None)
        self.assertEqual(self.run_cli("unreserve", "S1", "--all", "--role", "eng")[0], 0)
        self.assertEqual(self.sent(canned, "UNRESERVE_RESOURCES", "resources"), reserved("cpus:1;disk:64"))
        self.canned(GET_AGENTS=agents(Resources.parse("cpus:1")))
        code, _, err = self.run_cli("unreserve", "S1", "--all", "--role", "eng")
        self.assertEqual(code, 1)
        self.assertIn("nothing dynamically reserved for role eng", err)

    def test_volumes(self) -> None:
        """list shows every volume and whether a task uses it; create takes the reservation of disk the role
        has; destroy sends the volume as the master has it."""
        total = reserved("disk:100") + volume("a", 32) + volume("b", 16, path="x")
        canned = self.canned(GET_AGENTS=agents(total, volume("a", 32)), CREATE_VOLUMES=None, DESTROY_VOLUMES=None)
        code, out, _ = self.run_cli("volumes", "list")
        self.assertEqual(code, 0)
        rows = [line.split() for line in out.splitlines()]
        self.assertEqual(rows[0], ["AGENT", "ROLE", "ID", "SIZE", "PATH", "PRINCIPAL", "STATE"])
        self.assertEqual(sorted(rows[1:]), [["S1", "eng", "a", "32", "MB", "data", "ops", "in", "use"],
                                            ["S1", "eng", "b", "16", "MB", "x", "ops", "free"]])
        self.assertEqual(self.run_cli("volumes", "create", "S1", "c", "--size", "50", "--role", "eng",
                                      "--path", "data", "--principal", "ops")[0], 0)
        self.assertEqual(self.sent(canned, "CREATE_VOLUMES", "volumes"), volume("c", 50))
        self.assertEqual(self.run_cli("volumes", "destroy", "S1", "b")[0], 0)
        self.assertEqual(self.sent(canned, "DESTROY_VOLUMES", "volumes"), volume("b", 16, path="x"))
        code, _, err = self.run_cli("volumes", "create", "S1", "c", "--size", "500", "--role", "eng", "--path", "d")
        self.assertEqual(code, 1)
        self.assertIn("no disk reserved for role eng with 500 MB", err)
        code, _, err = self.run_cli("volumes", "destroy", "S1", "zzz")
        self.assertEqual(code, 1)
        self.assertIn("no persistent volume zzz", err)
        self.assertEqual(self.run_cli("volumes", "list", "--agent", "S9")[:2], (0, "No persistent volumes.\n"))
