"""The web UI in headless Chromium against a real ``mesos-local`` (master, two agents, the cron and
service frameworks, each on a free port): one cluster and one browser for the class, few and broad
tests. Screenshots go to :data:`tests.helpers.browser.SCREENSHOTS` (printed), one per page.

Every page the UI builds takes data as text: the tests put markup and script in a task's name, an
app's label and a job's description, and check that it shows as text and that no script ran
(``window.__pwned`` stays unset).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from twisted.trial import unittest

from tests.helpers import browser as browsers
from tests.helpers.processes import MESOSTW, Daemon, free_port, kill_processes_under

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_TESTS = os.path.join(os.path.dirname(HERE), "ui", "modules.test.js")
#: Markup that would set window.__pwned if it ever became HTML.
PAYLOAD = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"
#: The same without "/", which task IDs may not hold.
TASK_PAYLOAD = "<img src=x onerror=window.__pwned=1><b onmouseover=window.__pwned=2>b"


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback only
        return json.loads(answer.read())


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - a daemon still starting refuses connections
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class UIBrowserTests(unittest.TestCase):
    """The UI served by mesos-local at /, driven by a headless Chromium."""

    @classmethod
    def setUpClass(cls) -> None:
        reason = browsers.unavailable()
        if reason:
            raise unittest.SkipTest(reason)
        cls.base = os.path.realpath(tempfile.mkdtemp(prefix="mesostw-ui-"))
        cls.port = free_port()
        # Ports for tasks that no other process on this machine is likely to hold.
        task_ports = ",".join(f"{p}-{p}" for p in sorted({free_port() for _ in range(8)}))
        cls.local = Daemon("mesos-local", [f"--port={cls.port}", f"--work_dir={cls.base}/work", "--num_slaves=2",
                                           f"--resources=cpus:2;mem:2048;disk:2048;ports:[{task_ports}]",
                                           f"--cron_http_port={free_port()}", f"--service_http_port={free_port()}",
                                           "--service_scale_apps_interval=1secs"],
                           os.path.join(cls.base, "mesos-local.log"))
        cls.local.start()
        cls.url = f"http://127.0.0.1:{cls.port}/"
        cls.browser = None
        try:
            wait_until(lambda: http_json(cls.url + "master/state")["activated_slaves"] == 2, what="two agents")
            wait_until(lambda: http_json(cls.url + "service/v2/info")["elected"], what="the service framework")
            cls.browser = browsers.start_browser()
        except BaseException:
            cls.tearDownClass()
            raise
        print(f"\nweb UI screenshots: {browsers.SCREENSHOTS}")

    @classmethod
    def tearDownClass(cls) -> None:
        if getattr(cls, "browser", None) is not None:
            cls.browser.quit()
        cls.local.stop()
        kill_processes_under(cls.base)
        if not os.environ.get("MESOSTW_KEEP_TEST_DIRS"):
            import shutil

            shutil.rmtree(cls.base, ignore_errors=True)

    def go(self, page: str, ready: str, what: str = "") -> None:
        """Open ``#page`` and wait for ``ready`` (a script returning truthy) in it."""
        self.browser.open(self.url + "#" + page)
        self.browser.wait(ready, what=what or page)

    def assertNoScriptRan(self) -> None:
        self.assertIsNone(self.browser.run("return window.__pwned === undefined ? null : window.__pwned;"))

    def test_modules(self) -> None:
        """The UI's modules (formatting, the cluster model, filters, pages, graph layout, diff, stream
        parsers, DOM building, forms) pass their unit tests in the browser."""
        self.go("/", "return window.mesostw")
        with open(MODULE_TESTS) as f:
            source = f.read()
        run = "\nmain().then(arguments[0], (e) => arguments[0](['crashed: ' + e.stack]));"
        failures = self.browser.run_async(source + run)
        self.assertEqual(failures, [])

    def test_overview_shows_both_agents(self) -> None:
        """The overview shows the two agents and the resources, live; the agents and frameworks
        pages list them, and an agent's page shows its resources."""
        self.go("/", "return document.querySelectorAll('.agents-list li').length === 2", "two agents on the overview")
        self.assertIn("2 active", self.browser.text())
        self.browser.wait("return document.querySelectorAll('.resource').length >= 2")
        self.browser.screenshot("overview")
        self.go("/agents", "return document.querySelectorAll('[data-table=agents] tbody a[href^=\"#/agents/\"]')"
                           ".length === 2")
        self.browser.screenshot("agents")
        self.browser.run("document.querySelector('[data-table=agents] tbody a[href^=\"#/agents/\"]').click();")
        self.browser.wait("return location.hash.startsWith('#/agents/') && document.querySelector('.resource')")
        self.assertIn("127.0.0.1", self.browser.text())
        self.browser.screenshot("agent")
        self.go("/frameworks", "return document.querySelectorAll('[data-table=frameworks-active] tbody a').length >= 2")
        self.assertIn("marathon", self.browser.text())
        self.assertIn("chronos", self.browser.text())
        self.browser.screenshot("frameworks")
        self.go("/roles", "return document.querySelector('[data-table=roles] tbody')")
        self.browser.screenshot("roles")
        self.go("/offers", "return document.querySelector('[data-table=offers]')")
        self.browser.screenshot("offers")

    def test_task_appears_live_and_its_sandbox_shows_stdout(self) -> None:
        """A task launched with `mesostw execute` appears on the open tasks page without a reload, its
        name (markup) shown as text; its page links to its sandbox, whose stdout shows the output."""
        self.go("/tasks", "return document.querySelector('[data-table=tasks]') && "
                          "window.mesostw.feed.status.stream === 'live'")
        self.browser.run("window.__sameDocument = true;")
        name = "xss" + TASK_PAYLOAD
        execute = subprocess.Popen([MESOSTW, "execute", f"--master=127.0.0.1:{self.port}", f"--name={name}",
                                    "--command=echo hello-from-the-sandbox; sleep 3", "--timeout=60"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.base)
        self.addCleanup(lambda: execute.poll() is None and execute.kill())
        self.browser.wait("return [...document.querySelectorAll('.task-name')]"
                          ".some((el) => el.textContent === arguments[0])",
                          name, what="the task on the tasks page")
        self.assertTrue(self.browser.run("return window.__sameDocument === true;"), "the page was reloaded")
        self.assertNoScriptRan()
        self.browser.screenshot("tasks")
        self.browser.run("document.querySelector('.task-link').click();")
        self.browser.wait("return location.hash.startsWith('#/tasks/') && document.querySelector('.sandbox-link')")
        self.assertIn(name, self.browser.text("h1"))
        self.browser.wait("return document.querySelector('[data-table=statuses] tbody [data-state=TASK_RUNNING]')",
                          what="TASK_RUNNING in the status history")
        self.browser.screenshot("task")
        self.browser.run("document.querySelector('.sandbox-link').click();")
        self.browser.wait("return [...document.querySelectorAll('[data-table=files] a.file')]"
                          ".some((a) => a.textContent === 'stdout')",
                          what="stdout in the sandbox listing")
        self.browser.screenshot("sandbox")
        self.browser.run("[...document.querySelectorAll('[data-table=files] a.file')]"
                         ".find((a) => a.textContent === 'stdout').click();")
        self.browser.wait("const pre = document.querySelector('pre.file'); "
                          "return pre && pre.textContent.includes('hello-from-the-sandbox')",
                          what="the task's output in stdout")
        self.browser.screenshot("sandbox-stdout")
        self.assertEqual(execute.wait(60), 0)
        self.assertNoScriptRan()

    def test_app_created_from_the_ui_becomes_healthy(self) -> None:
        """The app form shows the service API's 422 details; an app created from it (with markup in a
        label) becomes healthy, its label shown as text, and its page lists its healthy task."""
        self.go("/services/new", "return document.querySelector('form.form')")
        fill = """
            const form = document.querySelector('form.form');
            for (const [name, value] of Object.entries(arguments[0])) form.elements[name].value = value;
            form.querySelector('button[type=submit]').click();
        """
        self.browser.run(fill, {"id": "/ui-web", "cmd": "python3 -m http.server --bind 127.0.0.1 $PORT0",
                                "json": '{"constraints": [["hostname", "NO_SUCH_OPERATOR"]]}'})
        self.browser.wait("return document.querySelector('.error li')", what="the API's 422 details")
        self.assertIn("constraints", self.browser.text(".error"))
        self.browser.screenshot("service-form-invalid")
        self.browser.run(fill, {"json": "", "health": "HTTP", "healthPath": "/", "labels": f"owner={PAYLOAD}"})
        self.browser.wait("return location.hash.startsWith('#/services/apps/ui-web')", what="the app's page")
        self.browser.wait("return document.querySelector('[data-table=app-tasks] tbody .badge') && "
                          "document.querySelector('main').innerText.includes('1 healthy')", timeout=60,
                          what="a healthy instance")
        self.assertIn(f"owner={PAYLOAD}", self.browser.text())
        self.assertNoScriptRan()
        self.browser.screenshot("service-app")
        self.go("/services", "return [...document.querySelectorAll('.app-link')]"
                             ".some((a) => a.textContent === '/ui-web')")
        self.assertIn(f"owner={PAYLOAD}", self.browser.text())
        self.browser.screenshot("services")
        self.assertNoScriptRan()

    def test_job_created_from_the_ui_runs_and_shows_in_the_graph(self) -> None:
        """A job added from the form runs (its schedule starts now), a dependent job added after it
        shows as its child in the drawn graph, and markup in a description stays text."""
        self.go("/jobs/new", "return document.querySelector('form.form')")
        fill = """
            const form = document.querySelector('form.form');
            for (const [name, value] of Object.entries(arguments[0])) form.elements[name].value = value;
            form.querySelector('button[type=submit]').click();
        """
        self.browser.run(fill, {"name": "ui-parent", "command": "echo parent-ran", "description": PAYLOAD})
        self.browser.wait("return location.hash === '#/jobs/ui-parent'", what="the job's page")
        self.browser.wait("return document.querySelector('[data-table=runs] tbody [data-state=TASK_FINISHED]')",
                          timeout=60, what="a successful run in the history")
        self.assertIn(PAYLOAD, self.browser.text())
        self.browser.screenshot("job")
        self.go("/jobs/new", "return document.querySelector('form.form')")
        self.browser.run(fill, {"name": "ui-child", "command": "echo child-ran", "parents": "ui-parent"})
        self.browser.wait("return location.hash === '#/jobs/ui-child'")
        self.go("/jobs", "return document.querySelector('svg.graph [data-node=ui-child]') && "
                         "document.querySelector('svg.graph path.edge[data-from=ui-parent][data-to=ui-child]')",
                what="the edge from ui-parent to ui-child")
        parent, child = self.browser.run(
            "return ['ui-parent', 'ui-child'].map((n) => "
            "document.querySelector(`svg.graph [data-node=${n}] rect`).getAttribute('y') * 1);")
        self.assertLess(parent, child)
        self.browser.screenshot("jobs")
        self.assertNoScriptRan()


class UIAuthenticationTests(unittest.TestCase):
    """The UI of a master that requires HTTP authentication: it asks for credentials and uses them."""

    @classmethod
    def setUpClass(cls) -> None:
        reason = browsers.unavailable()
        if reason:
            raise unittest.SkipTest(reason)
        cls.base = os.path.realpath(tempfile.mkdtemp(prefix="mesostw-ui-auth-"))
        credentials = os.path.join(cls.base, "credentials.json")
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": "ops", "secret": "s3cret"}]}, f)
        cls.port = free_port()
        cls.local = Daemon("mesos-local", [f"--port={cls.port}", f"--work_dir={cls.base}/work", "--num_slaves=1",
                                           "--frameworks=", f"--credentials={credentials}",
                                           "--authenticate_http_readonly", "--authenticate_http_readwrite",
                                           "--authentication_failure_delay=0secs"],
                           os.path.join(cls.base, "mesos-local.log"))
        cls.local.start()
        cls.url = f"http://127.0.0.1:{cls.port}/"
        cls.browser = None
        try:
            wait_until(lambda: http_json(cls.url + "ui/config")["authentication"]["readwrite"], what="the master")
            cls.browser = browsers.start_browser()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        if getattr(cls, "browser", None) is not None:
            cls.browser.quit()
        cls.local.stop()
        kill_processes_under(cls.base)
        import shutil

        shutil.rmtree(cls.base, ignore_errors=True)

    def sign_in(self, user: str, password: str) -> None:
        self.browser.wait("return document.querySelector('dialog#login').open", what="the sign-in dialog")
        self.browser.run("""
            const form = document.querySelector('dialog#login form');
            form.elements.user.value = arguments[0];
            form.elements.password.value = arguments[1];
            form.querySelector('button[value=ok]').click();
        """, user, password)

    def test_the_ui_asks_for_credentials_and_uses_them(self) -> None:
        """Without credentials the page asks for them (no data shows), wrong ones are asked again, and
        with the right ones the overview shows the agent and the events stream live."""
        self.browser.open(self.url)
        self.browser.wait("return document.querySelector('dialog#login').open", what="the sign-in dialog")
        self.assertEqual(self.browser.run("return document.querySelectorAll('.agents-list li').length;"), 0)
        self.browser.screenshot("sign-in")
        self.sign_in("ops", "wrong")
        self.sign_in("ops", "s3cret")
        self.browser.wait("return document.querySelectorAll('.agents-list li').length === 1 && "
                          "window.mesostw.feed.status.stream === 'live'", what="the overview, signed in")
        self.assertIn("signed in as ops", self.browser.text("#account"))
