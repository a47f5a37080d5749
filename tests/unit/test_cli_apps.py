"""``mesostw apps``: every subcommand against the service framework's real API, in memory.

The CLI's one way out (:data:`mesostw.cli.service_api.send`) is swapped for a function that hands
each request to the framework's router on the in-process cluster (``tests.helpers.service``),
so the commands parse what the framework really answers; the real-process run is in
``tests/integration/test_service_processes.py``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any
from urllib.parse import urlsplit

from twisted.trial import unittest

from mesostw.cli import main, service_api
from mesostw.cli.errors import CLIError, UsageError
from tests.helpers.service import ServiceHarness

URL = "http://127.0.0.1:8080"


class AppsCommandTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = ServiceHarness().start()
        self.addCleanup(self.h.stop)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.patch(service_api, "send", self.send)
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != service_api.URL_VARIABLE})

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
             timeout: float) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(url)
        self.requests.append((method, parts.path + (f"?{parts.query}" if parts.query else ""), dict(headers)))
        reply = self.h.client.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body or b"",
                                      headers)
        self.h.settle()
        return reply.code, reply.body, reply.headers

    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main.run(["apps", *argv], out, err)
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv: str) -> str:
        code, out, err = self.run_cli(*argv)
        self.assertEqual((code, err), (0, ""), out)
        return out

    def definition(self, value: Any) -> str:
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(value if isinstance(value, str) else json.dumps(value))
        self.addCleanup(os.remove, path)
        return path

    def create_web(self, instances: int = 2) -> None:
        self.ok("create", self.definition({"id": "/shop/web", "cmd": "serve --port $PORT0", "instances": instances,
                                           "cpus": 0.1, "mem": 32,
                                           "healthChecks": [{"protocol": "TCP", "intervalSeconds": 1}]}))
        self.h.until(lambda: not self.h.deployments() and len(self.h.running("/shop/web")) == instances)

    def test_create_list_show(self) -> None:
        """create prints the app and its deployment; list shows it with running/wanted and health;
        show gives its facts and a table of its tasks."""
        out = self.ok("create", self.definition({"id": "/shop/web", "cmd": "serve", "instances": 2, "cpus": 0.1,
                                                 "mem": 32, "healthChecks": [{"protocol": "TCP",
                                                                               "intervalSeconds": 1}]}))
        self.assertRegex(out, r"^Created /shop/web \(deployment [0-9a-f-]{36}\)\n$")
        self.h.until(lambda: not self.h.deployments() and len(self.h.running("/shop/web")) == 2)
        lines = self.ok("list").splitlines()
        self.assertEqual(lines[0].split(), ["APP", "INSTANCES", "HEALTHY", "CPUS", "MEM", "DEPLOYING", "COMMAND"])
        self.assertEqual(lines[1].split(), ["/shop/web", "2/2", "2/2", "0.1", "32", "serve"])
        shown = self.ok("show", "shop/web")
        self.assertRegex(shown, r"^App: +/shop/web\n")
        self.assertRegex(shown, r"\nInstances: +2 running of 2 \(0 staging\)\n")
        self.assertRegex(shown, r"\nHealthy: +2/2\n")
        for instance in self.h.running("/shop/web"):
            self.assertRegex(shown, rf"\n{instance.task_id}\s+{instance.host}\s+{instance.ports[0]}\s+TASK_RUNNING"
                                    r"\s+yes\s")

    def test_json_is_the_apis_own(self) -> None:
        """--json prints what the API answered, for scripts."""
        self.create_web()
        listed = json.loads(self.ok("list", "--json"))
        self.assertEqual([a["id"] for a in listed], ["/shop/web"])
        self.assertEqual(listed[0]["tasksRunning"], 2)
        tasks = json.loads(self.ok("tasks", "/shop/web", "--json"))
        self.assertEqual({t["id"] for t in tasks}, {i.task_id for i in self.h.running("/shop/web")})
        self.assertEqual(json.loads(self.ok("show", "/shop/web", "--json"))["id"], "/shop/web")

    def test_scale_restart_update(self) -> None:
        """scale, restart and update each start a deployment and print its ID; the framework then does it."""
        self.create_web()
        self.assertRegex(self.ok("scale", "/shop/web", "3"),
                         r"^Scaling /shop/web to 3 instances \(deployment [0-9a-f-]{36}\)\n$")
        self.h.until(lambda: not self.h.deployments() and len(self.h.running("/shop/web")) == 3)
        before = {i.task_id for i in self.h.running("/shop/web")}
        self.assertIn("Restarting /shop/web (deployment ", self.ok("restart", "shop/web"))
        self.h.until(lambda: not self.h.deployments() and len(self.h.running("/shop/web")) == 3
                     and not before & {i.task_id for i in self.h.running("/shop/web")})
        self.assertIn("Updating /shop/web (deployment ", self.ok("update", "/shop/web",
                                                                 self.definition({"cmd": "serve --v2"})))
        self.h.until(lambda: not self.h.deployments())
        self.assertEqual(self.h.state.apps["/shop/web"].spec["cmd"], "serve --v2")
        self.assertEqual(self.h.state.apps["/shop/web"].instances, 3)

    def test_kill_tasks_with_and_without_scale(self) -> None:
        """kill with task IDs kills those (replaced); with --scale the app shrinks; without IDs every
        task of the app goes; a task of another app is refused before anything is killed."""
        self.create_web(3)
        first, second, third = sorted(i.task_id for i in self.h.running("/shop/web"))
        self.assertEqual(self.ok("kill", "/shop/web", first), f"Killing {first}\n")
        self.h.until(lambda: not self.h.deployments() and len(self.h.running("/shop/web")) == 3
                     and first not in {i.task_id for i in self.h.running("/shop/web")})
        out = self.ok("kill", "/shop/web", second, "--scale")
        self.assertIn("scaling it down (deployment ", out)
        self.h.until(lambda: not self.h.deployments() and len(self.h.running("/shop/web")) == 2)
        self.assertEqual(self.h.state.apps["/shop/web"].instances, 2)

        code, _, err = self.run_cli("kill", "/shop/web", "other.1234")
        self.assertEqual((code, err), (1, "mesostw apps kill: not tasks of /shop/web: other.1234\n"))
        self.assertEqual(len(self.h.running("/shop/web")), 2)
        out = self.ok("kill", "/shop/web", "--scale")
        self.assertIn("(deployment ", out)
        self.h.until(lambda: not self.h.deployments() and not self.h.running("/shop/web"))
        self.assertEqual(self.h.state.apps["/shop/web"].instances, 0)

    def test_tasks_deployments_queue_cancel_delete(self) -> None:
        """tasks lists every app's tasks; deployments shows a stuck one with what it waits for; queue
        says why launches wait; cancel rolls it back; delete removes the app."""
        self.create_web(1)
        tasks = self.ok("tasks").splitlines()
        self.assertEqual(tasks[0].split()[:3], ["APP", "TASK", "HOST"])
        self.assertTrue(tasks[1].startswith("/shop/web  shop_web."), tasks)
        self.ok("create", self.definition({"id": "/huge", "cmd": "serve", "cpus": 0.1, "mem": 10 ** 6}))
        self.h.advance(3)
        deployments = self.ok("deployments").splitlines()
        self.assertEqual(deployments[0].split(), ["DEPLOYMENT", "APPS", "STEP", "ACTIONS", "WAITING", "FOR"])
        (row,) = deployments[1:]
        self.assertIn("/huge", row)
        self.assertIn("2/2", row)
        self.assertIn("ScaleApplication /huge", row)
        self.assertIn("InsufficientMemory", row)
        queue = self.ok("queue").splitlines()
        self.assertEqual(queue[1].split()[:2], ["/huge", "1"])
        deployment_id = next(iter(self.h.state.deployments))
        self.assertEqual(self.ok("cancel", deployment_id).split()[:4], ["Rolling", "back", "deployment",
                                                                        deployment_id])
        self.h.until(lambda: not self.h.deployments() and "/huge" not in self.h.state.apps)
        self.assertIn("Deleting /shop/web (deployment ", self.ok("delete", "/shop/web"))
        self.h.until(lambda: not self.h.deployments() and not self.h.state.apps)
        self.assertEqual(self.ok("list").splitlines()[1:], [])

    def test_errors_say_why_and_exit_non_zero(self) -> None:
        """A 404, a 409 lock, a 422 with field details, a bad file and a bad URL each give one line on
        stderr and a non-zero exit, and change nothing."""
        code, out, err = self.run_cli("show", "/nope")
        self.assertEqual((code, out, err), (1, "", "mesostw apps show: App '/nope' does not exist\n"))
        code, _, err = self.run_cli("create", self.definition({"id": "/bad", "cmd": "x", "mem": -1}))
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith("mesostw apps create: Object is not valid; /mem: "), err)
        self.ok("create", self.definition({"id": "/huge", "cmd": "serve", "cpus": 0.1, "mem": 10 ** 6}))
        code, _, err = self.run_cli("scale", "/huge", "2")
        self.assertEqual(code, 1)
        self.assertIn("App is locked by one or more deployments", err)
        self.assertEqual(self.h.state.apps["/huge"].instances, 1)
        code, _, err = self.run_cli("create", self.definition("{not json"))
        self.assertEqual(code, 2)
        self.assertIn("is not JSON", err)
        code, _, err = self.run_cli("create", self.definition([1, 2]))
        self.assertEqual((code, err.split(":")[0]), (2, "mesostw apps create"))
        code, _, err = self.run_cli("list", "--url", "ftp://x")
        self.assertEqual((code, err), (2, "mesostw apps list: invalid service URL 'ftp://x': expected "
                                          "http(s)://host:port\n"))
        self.assertEqual(set(self.h.state.apps), {"/huge"})

    def test_url_from_the_environment_and_credentials_from_the_url(self) -> None:
        """Without --url the CLI uses $MESOSTW_SERVICE_URL; user:password in the URL becomes HTTP Basic."""
        self.patch(os, "environ", {service_api.URL_VARIABLE: "http://ops:s3cret@10.0.0.9:8081/"})
        self.ok("list")
        method, target, headers = self.requests[-1]
        self.assertEqual((method, target.split("?")[0]), ("GET", "/v2/apps"))
        self.assertEqual(headers["Authorization"], "Basic b3BzOnMzY3JldA==")

    def test_a_redirect_is_followed_with_the_same_method(self) -> None:
        """A standby master's 307 for a PUT is followed to the leader with the same method and body."""
        self.create_web(1)
        real = self.send

        def redirecting(method: str, url: str, body: bytes | None, headers: dict[str, str],
                        timeout: float) -> tuple[int, bytes, dict[str, str]]:
            if url.startswith("http://standby:8080"):
                self.requests.append((method, url, dict(headers)))
                return 307, b'{"message": "not the leader"}', {"location": url.replace("standby", "leader")}
            return real(method, url, body, headers, timeout)

        self.patch(service_api, "send", redirecting)
        self.ok("scale", "/shop/web", "2", "--url", "http://standby:8080")
        self.assertEqual([m for m, _, _ in self.requests[-2:]], ["PUT", "PUT"])
        self.h.until(lambda: not self.h.deployments() and len(self.h.running("/shop/web")) == 2)


class ServiceURLTests(unittest.TestCase):
    def test_forms(self) -> None:
        """--url takes host:port or http(s)://host:port[/]; the default is Marathon's port here."""
        self.assertEqual(service_api.service_url(None, {}), "http://127.0.0.1:8080")
        self.assertEqual(service_api.service_url("h:9", {}), "http://h:9")
        self.assertEqual(service_api.service_url("https://h:9/", {}), "https://h:9")
        self.assertEqual(service_api.service_url(None, {service_api.URL_VARIABLE: "h:1"}), "http://h:1")
        for bad in ("ftp://h", "http://", "http://h:x"):
            self.assertRaises(UsageError, service_api.service_url, bad, {})

    def test_app_paths(self) -> None:
        """App ids become URL paths without leading or doubled slashes; an empty one is refused."""
        self.assertEqual(service_api.app_path("/shop//web"), "shop/web")
        self.assertRaises(CLIError, service_api.app_path, "/")
