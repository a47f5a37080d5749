"""The web UI's server side: the page and its assets (public, cached, compressed, confined to the
package's files), /ui/config, the hosted frameworks' APIs under /<name> and the agent forwarding,
all behind the master's filters (HTTP authentication when it is on)."""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from mesostw.master.service import MasterService
from mesostw.ui import CONTENT_SECURITY_POLICY, STATIC, Assets
from mesostw.ui.master import AGENT_PATHS
from tests.helpers.probe import master_config, probe_plugin
from tests.helpers.web import Client


def settle(clock: Any, rounds: int = 200) -> None:
    for _ in range(rounds):
        if not [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]:
            return
        clock.advance(0)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class AssetTests(unittest.TestCase):
    def test_every_module_the_page_preloads_ships(self) -> None:
        """The page preloads every script module in the package, and each one it names exists."""
        assets = Assets()
        page = assets.files["index.html"].body.decode()
        scripts = {name for name in assets.files if name.endswith(".js")}
        preloaded = {line.split('href="ui/')[1].split('"')[0] for line in page.splitlines() if "modulepreload" in line}
        self.assertEqual(preloaded, scripts - {"js/app.js"})
        self.assertIn('src="ui/js/app.js"', page)

    def test_no_script_builds_markup_from_strings(self) -> None:
        """No module sets innerHTML/outerHTML, calls insertAdjacentHTML or document.write, or evaluates
        text: data only ever becomes text nodes and attribute values."""
        for name, asset in Assets().files.items():
            if not name.endswith(".js"):
                continue
            text = asset.body.decode()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
                self.assertNotIn(sink, text, f"{name} uses {sink}")

    def test_the_bundle_is_small(self) -> None:
        """Everything the page loads is in the package and stays small (under 64 KiB gzipped)."""
        assets = Assets()
        self.assertEqual({os.path.relpath(os.path.join(d, f), STATIC) for d, _, fs in os.walk(STATIC) for f in fs},
                         set(assets.files))
        self.assertLess(assets.size(gzipped=True), 64 * 1024)


class MasterUITests(unittest.TestCase):
    def build(self, **overrides: Any) -> tuple[MasterService, Client]:
        self.reactor = MemoryReactorClock()
        service = MasterService(master_config(**overrides), reactor=self.reactor, plugins={"probe": probe_plugin()})
        self.addCleanup(lambda: service.stopService() if service.running else None)
        service.startService()
        settle(self.reactor)
        return service, Client(service.router, self.reactor)

    def test_the_page_and_its_assets(self) -> None:
        """/ is the page with a strict Content-Security-Policy; scripts have their media type, come
        gzipped when asked, answer 304 to their ETag, and nothing outside the package is served."""
        _, client = self.build()
        page = client.get("/")
        self.assertEqual(page.code, 200)
        self.assertEqual(page.headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(page.headers["content-security-policy"], CONTENT_SECURITY_POLICY)
        self.assertIn(b'<script type="module" src="ui/js/app.js">', page.body)
        script = client.request("GET", "/ui/js/app.js", headers={"Accept-Encoding": "gzip, deflate"})
        self.assertEqual((script.code, script.headers["content-type"], script.headers["content-encoding"]),
                         (200, "text/javascript; charset=utf-8", "gzip"))
        self.assertIn(b"matchRoute", gzip.decompress(script.body))
        again = client.request("GET", "/ui/js/app.js", headers={"If-None-Match": script.headers["etag"]})
        self.assertEqual((again.code, again.body), (304, b""))
        for path in ("/ui/missing.js", "/ui/../setup.py", "/ui/%2e%2e/%2e%2e/setup.py", "/ui/js"):
            self.assertEqual(client.get(path).code, 404, path)

    def test_config_names_the_hosted_frameworks(self) -> None:
        """/ui/config says the page shows the cluster, and where each hosted framework's API is."""
        _, client = self.build()
        config = client.get_json("/ui/config")
        self.assertEqual(config["daemon"], "master")
        self.assertTrue(config["cluster"])
        self.assertEqual(config["frameworks"]["probe"]["base"], "probe")
        self.assertEqual(config["frameworks"]["probe"]["api_url"], "http://127.0.0.1:4499")
        self.assertEqual(config["authentication"], {"readonly": False, "readwrite": False})

    def test_hosted_frameworks_answer_under_their_name(self) -> None:
        """/<name>/... is the hosted framework's own API, answered in process (one origin for the page)."""
        service, client = self.build()
        (framework,) = service.master.frameworks.values()
        self.assertEqual(client.get_json("/probe/state")["framework_id"], framework.id)
        self.assertEqual(client.get("/probe/no-such-thing").code, 404)

    def test_the_master_forwards_only_sandbox_reads_to_registered_agents(self) -> None:
        """/agent/<id>/<path> forwards only files/* and slave(1)/state, only to registered agents."""
        _, client = self.build()
        self.assertEqual(AGENT_PATHS, {"files/browse", "files/read", "files/download", "slave(1)/state"})
        unknown = client.get("/agent/nobody/files/read?path=/etc/passwd")
        self.assertEqual(unknown.code, 404)
        self.assertIn("not registered", unknown.json()["message"])
        other = client.get("/agent/nobody/monitor/statistics")
        self.assertEqual(other.code, 404)
        self.assertIn("forwards only", other.json()["message"])

    def test_with_authentication_only_the_page_is_public(self) -> None:
        """With HTTP authentication on, the page, its assets and /ui/config answer anyone, while the
        data (state, the operator API, hosted frameworks, agent forwarding) asks for credentials, and
        the same credentials as the API's open it."""
        folder = self.mktemp()
        os.makedirs(folder)
        credentials = os.path.join(folder, "credentials.json")
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": "ops", "secret": "s3cret"}]}, f)
        _, client = self.build(credentials=credentials, authenticate_http_readonly=True,
                               authenticate_http_readwrite=True)
        for path in ("/", "/ui/js/app.js", "/ui/style.css"):
            self.assertEqual(client.get(path).code, 200, path)
        config = client.get_json("/ui/config")
        self.assertEqual(config["authentication"], {"readonly": True, "readwrite": True})
        for method, path in (("GET", "/master/state"), ("GET", "/probe/state"), ("GET", "/agent/x/files/read"),
                             ("POST", "/api/v1"), ("POST", "/probe/tasks"), ("GET", "/metrics/snapshot")):
            reply = client.request(method, path, b'{"type": "GET_STATE"}', {"Content-Type": "application/json"})
            self.assertEqual(reply.code, 401, path)
            self.assertIn("Basic", reply.headers["www-authenticate"])
        self.assertEqual(client.request("GET", "/probe/state", headers=basic("ops", "s3cret")).code, 200)
        self.assertEqual(client.request("GET", "/master/state", headers=basic("ops", "s3cret")).code, 200)
        self.assertEqual(client.request("GET", "/probe/state", headers=basic("ops", "wrong")).code, 401)


class StandaloneUITests(unittest.TestCase):
    def test_a_standalone_framework_serves_its_own_pages(self) -> None:
        """A framework on its own port serves the page at / and a /ui/config naming only itself, its
        API at the same origin (no cluster pages)."""
        from mesostw.scheduler.standalone import StandaloneFramework
        from mesostw.store.memory import MemoryStateStore
        from tests.unit.test_standalone_host import host_config

        reactor = MemoryReactorClock()
        plugin, config, framework_config = host_config("--http_port=4500")
        framework = StandaloneFramework(plugin, config, framework_config, reactor=reactor, store=MemoryStateStore(),
                                        on_abort=lambda name, reason: None, end=lambda: None)
        client = Client(framework.site, reactor)
        self.assertEqual(client.get("/").code, 200)
        config_answer = client.get_json("/ui/config")
        self.assertEqual((config_answer["daemon"], config_answer["cluster"]), ("probe", False))
        self.assertEqual(config_answer["frameworks"]["probe"]["base"], "")
