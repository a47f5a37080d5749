"""The router: exact routes, ``{param}`` patterns, prefix mounts and dispatch-time filters."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web import server

from mesostw.http.router import HTTPError, Response, Router
from tests.helpers.web import Client


def echo(request: server.Request, **params: str) -> dict[str, Any]:
    return {"path": request.path.decode(), "params": params}


class PatternTests(unittest.TestCase):
    def setUp(self) -> None:
        self.router = Router()
        self.client = Client(self.router)

    def test_segment_parameter(self) -> None:
        """``{name}`` matches one segment and reaches the handler as a keyword argument, URL-decoded."""
        self.router.route("/scheduler/job/{name}", echo)
        reply = self.client.get("/scheduler/job/nightly%20backup")
        self.assertEqual(reply.json()["params"], {"name": "nightly backup"})
        self.assertEqual(self.client.get("/scheduler/job/a/b").code, 404)

    def test_path_parameter_with_suffix(self) -> None:
        """``{name:path}`` spans segments; a pattern with more literal text wins (Marathon's app paths)."""
        self.router.route("/v2/apps/{id:path}", echo)
        self.router.route("/v2/apps/{id:path}/restart", echo, methods=("POST",))
        self.router.route("/v2/apps/{id:path}/tasks", echo)
        self.assertEqual(self.client.get("/v2/apps/prod/web").json()["params"], {"id": "prod/web"})
        self.assertEqual(self.client.get("/v2/apps/prod/web/tasks").json()["params"], {"id": "prod/web"})
        self.assertEqual(self.client.request("POST", "/v2/apps/a/b/restart").json()["params"], {"id": "a/b"})

    def test_trailing_slash(self) -> None:
        """A trailing slash is ignored, for exact and pattern routes alike."""
        self.router.route("/v2/apps", lambda request: ["list"])
        self.router.route("/v2/apps/{id:path}", echo)
        self.assertEqual(self.client.get("/v2/apps/").json(), ["list"])
        self.assertEqual(self.client.get("/v2/apps/web/").json()["params"], {"id": "web"})

    def test_exact_route_beats_pattern(self) -> None:
        """An exact path is chosen over a pattern that also matches it."""
        self.router.route("/v2/apps/{id:path}", echo)
        self.router.route("/v2/apps/special", lambda request: "exact")
        self.assertEqual(self.client.get("/v2/apps/special").json(), "exact")

    def test_method_not_allowed_lists_methods_of_every_matching_pattern(self) -> None:
        """A path that matches only with other methods answers 405 with an Allow header."""
        self.router.route("/v2/apps/{id:path}", echo, methods=("GET", "PUT"))
        reply = self.client.request("DELETE", "/v2/apps/web")
        self.assertEqual(reply.code, 405)
        self.assertEqual(reply.headers["allow"], "GET, PUT")
        self.assertIn("message", reply.json())

    def test_unknown_path_is_a_json_404(self) -> None:
        """Nothing matches: 404 with a JSON message."""
        reply = self.client.get("/nowhere")
        self.assertEqual(reply.code, 404)
        self.assertEqual(reply.json(), {"message": "No such endpoint: /nowhere"})


class MountTests(unittest.TestCase):
    def setUp(self) -> None:
        self.router = Router()
        self.client = Client(self.router)

    def test_mounted_router_sees_the_rest_of_the_path(self) -> None:
        """A Router mounted under a prefix resolves the remainder of the path."""
        api = Router()
        api.route("/jobs/{name}", echo)
        api.route("/", lambda request: "api root")
        self.router.mount("/v1/scheduler", api)
        self.assertEqual(self.client.get("/v1/scheduler/jobs/x").json()["params"], {"name": "x"})
        self.assertEqual(self.client.get("/v1/scheduler").json(), "api root")
        self.assertEqual(self.client.get("/v1/scheduler/nope").code, 404)

    def test_longest_prefix_wins(self) -> None:
        """Of two mounts, the longer prefix takes its paths."""
        outer, inner = Router(), Router()
        outer.route("/{rest:path}", lambda request, rest: f"outer {rest}")
        inner.route("/{rest:path}", lambda request, rest: f"inner {rest}")
        self.router.mount("/ui", outer)
        self.router.mount("/ui/api", inner)
        self.assertEqual(self.client.get("/ui/api/x").json(), "inner x")
        self.assertEqual(self.client.get("/ui/page").json(), "outer page")


class FilterTests(unittest.TestCase):
    def setUp(self) -> None:
        self.router = Router()
        self.client = Client(self.router)
        self.leading = False
        self.router.route("/health", lambda request: "ok")

    def not_leading(self, request: server.Request) -> HTTPError | None:
        return None if self.leading else HTTPError(307, "not the leader", {"Location": "//leader:5050"})

    def test_routes_added_after_the_filter_are_guarded(self) -> None:
        """A filter applies at dispatch time, to routes and mounts registered later too."""
        self.router.guard(self.not_leading, exempt={"/health"})
        self.router.route("/v2/apps", lambda request: [])
        later = Router()
        later.route("/x", lambda request: "x")
        self.router.mount("/late", later)
        self.assertEqual(self.client.get("/v2/apps").code, 307)
        self.assertEqual(self.client.get("/late/x").code, 307)
        self.assertEqual(self.client.get("/health").json(), "ok")
        self.leading = True
        self.assertEqual(self.client.get("/v2/apps").json(), [])
        self.assertEqual(self.client.get("/late/x").json(), "x")

    def test_exempt_pattern_by_its_registered_form(self) -> None:
        """Exemptions name route keys: a pattern is exempt as written."""
        self.router.route("/ping/{who}", echo)
        self.router.guard(self.not_leading, exempt={"/ping/{who}"})
        self.assertEqual(self.client.get("/ping/me").code, 200)

    def test_asynchronous_filter_runs_before_the_handler_and_in_order(self) -> None:
        """Filters may return Deferreds; they run in order and the first refusal answers."""
        order: list[str] = []
        gate: defer.Deferred = defer.Deferred()

        def first(request: server.Request) -> defer.Deferred:
            order.append("first")
            return gate

        def second(request: server.Request) -> None:
            order.append("second")
            request.principal = "ops"  # type: ignore[attr-defined]

        self.router.filter(first)
        self.router.filter(second)
        self.router.route("/who", lambda request: {"principal": request.principal})
        self.client.clock.callLater(0, gate.callback, None)
        self.assertEqual(self.client.get("/who").json(), {"principal": "ops"})
        self.assertEqual(order, ["first", "second"])

    def test_refusal_stops_later_filters_and_the_handler(self) -> None:
        """A filter raising HTTPError answers; nothing after it runs."""
        called: list[str] = []

        def refuse(request: server.Request) -> None:
            raise HTTPError(401, "who are you", {"WWW-Authenticate": 'Basic realm="mesos"'})

        self.router.filter(refuse)
        self.router.filter(lambda request: called.append("later"))
        self.router.route("/secret", lambda request: called.append("handler"))
        reply = self.client.get("/secret")
        self.assertEqual((reply.code, reply.headers["www-authenticate"]), (401, 'Basic realm="mesos"'))
        self.assertEqual(called, [])

    def test_filter_failure_is_a_500_not_a_crash(self) -> None:
        """A filter that breaks answers 500 with a JSON message; the router serves on."""
        self.router.filter(lambda request: 1 / 0, exempt={"/health"})
        self.router.route("/x", lambda request: "x")
        self.assertEqual(self.client.get("/x").code, 500)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.client.get("/health").json(), "ok")

    def test_response_objects_pass_through_filters(self) -> None:
        """Handlers behind filters may still return raw Responses."""
        self.router.filter(lambda request: None)
        self.router.route("/text", lambda request: Response(b"plain", 200, {"Content-Type": "text/plain"}))
        reply = self.client.get("/text")
        self.assertEqual((reply.body, reply.headers["content-type"]), (b"plain", "text/plain"))
