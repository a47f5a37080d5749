"""The master's HTTP endpoints (Mesos's operator API shapes)."""

from __future__ import annotations

from typing import Any, Callable, NoReturn

from twisted.python.failure import Failure
from twisted.web import server

from mesostw.auth.http import REALM_READONLY, REALM_READWRITE, basic_credentials, http_principal
from mesostw.http.prometheus import PrometheusEndpoint
from mesostw.http.router import HTTPError, Response, Router, query
from mesostw.master import metrics, state_json
from mesostw.master.master import RECOVERING, KillOutcome, Master, TeardownOutcome
from mesostw.master.operator_api import MasterOperatorAPI
from mesostw.master.operator_http import OperatorEndpoints
from mesostw.master.operator_maintenance import MaintenanceEndpoints
from mesostw.master.operator_quota import QuotaEndpoints
from mesostw.master.operator_reservations import ReservationEndpoints
from mesostw.model.info import MasterInfo
from mesostw.ui import PUBLIC_ROUTES


class LeaderRouting:
    """Where a request to this master belongs: here when it leads, else with the leader.

    Both the guard of leader-only endpoints and ``/master/redirect`` ask this one object, so they
    cannot disagree about who leads:

    - this master leads (elected and recovered): leader-only endpoints answer here, and
      ``/master/redirect`` answers 307 to this master's root, as Mesos's leader does;
    - another master leads: 307 to it, protocol-relative as Mesos (to the same path for leader-only
      endpoints, to its root for ``/master/redirect``);
    - this master is elected but still recovering the registry: 503, as Mesos answers leader-only
      endpoints before recovery ends (``/master/redirect`` too: the address it would give serves nothing yet);
    - no leader is known: 503.

    ``leader`` gives the elected master's MasterInfo (None when none is known); by default this
    master when it leads, for a master without an election.
    """

    def __init__(self, master: Master, leader: Callable[[], MasterInfo | None] | None = None):
        self.master = master
        self.leader = leader if leader is not None else (lambda: master.info if master.leading else None)

    def not_leading(self, request: server.Request) -> HTTPError | None:
        """None when this master serves leader-only endpoints; else the 307 or 503 to answer with."""
        if self.master.leading:
            return None
        return self._elsewhere(request.uri.decode("utf-8", "replace"))

    def redirect(self, request: server.Request) -> NoReturn:
        """``/master/redirect``: 307 to the leading master's root, or 503."""
        if not self.master.leading:
            raise self._elsewhere("")
        info = self.master.info
        raise HTTPError(307, f"This master leads: {info.pid}", {"Location": f"//{info.hostname}:{info.port}"})

    def leader_pid(self) -> str | None:
        """Who leads, for refusals on other transports: None when this master does, else the leader's
        pid, or why there is none to go to."""
        if self.master.leading:
            return None
        leader = self.leader()
        if leader is None:
            return "unknown"
        if leader.id == self.master.id:
            return RECOVERING
        return leader.pid

    def _elsewhere(self, path: str) -> HTTPError:
        leader = self.leader()
        if leader is None:
            return HTTPError(503, "No leading master is elected yet")
        if leader.id == self.master.id:
            return HTTPError(503, "This master is elected and still recovering the registry")
        return HTTPError(307, f"This master is not the leader; the leader is {leader.pid}",
                         {"Location": f"//{leader.hostname}:{leader.port}{path}"})


class MasterEndpoints:
    """Registers the master's operator endpoints on a :class:`Router`.

    ``routing`` decides which requests this master answers (by default: all of them while it leads).
    """

    #: Answered by any master; everything else is for the leader only (``/master/redirect`` answers by
    #: the same rules, see :class:`LeaderRouting`).
    ANY_MASTER = {"/master/health", "/health", "/master/flags", "/flags", "/version", "/master/version",
                  "/metrics/snapshot", "/metrics", "/master/redirect", "/redirect"}

    def __init__(self, master: Master, flags: dict[str, str], routing: LeaderRouting | None = None):
        self.master = master
        self.flags = flags
        self.routing = routing if routing is not None else LeaderRouting(master)
        self.operator = OperatorEndpoints(master)
        self.api = MasterOperatorAPI(master, flags, log_file=flags.get("external_log_file") or None)
        self.prometheus = PrometheusEndpoint(lambda: metrics.snapshot(self.master, self.master.leading))

    def install(self, router: Router) -> None:
        for path in ("/master/state", "/master/state.json", "/state", "/state.json"):
            router.route(path, self.state)
        router.route("/master/health", self.health)
        router.route("/health", self.health)
        for path in ("/master/flags", "/flags"):
            router.route(path, lambda request: {"flags": self.flags})
        for path in ("/version", "/master/version"):
            router.route(path, lambda request: state_json.build_info())
        router.route("/metrics/snapshot", self.snapshot)
        self.prometheus.install(router)
        self.operator.install(router)
        QuotaEndpoints(self.master).install(router)
        MaintenanceEndpoints(self.master).install(router)
        ReservationEndpoints(self.master).install(router)
        self.api.install(router)
        for path in ("/master/redirect", "/redirect"):
            router.route(path, self.routing.redirect)
        router.route("/master/teardown", self.teardown, methods=("POST",))
        router.route("/master/kill", self.kill, methods=("POST",))
        router.guard(self.routing.not_leading, self.ANY_MASTER | self.OWN_LEADER_GUARD)
        # Before the body too: a request that fails authentication is refused without reading it.
        router.filter(self.authenticate, self.UNAUTHENTICATED | self.OWN_AUTHENTICATION, before_body=True)

    #: Answered without HTTP authentication (the web UI's page and scripts hold no data).
    UNAUTHENTICATED = frozenset({"/master/health", "/health", "/master/redirect", "/redirect"}) | PUBLIC_ROUTES
    #: Endpoints that authenticate by their own rules (the scheduler API's --authenticate_http_frameworks).
    OWN_AUTHENTICATION = frozenset({"/api/v1/scheduler", "/master/api/v1/scheduler"})
    #: Endpoints that answer a non-leader by their own rules (the scheduler API authenticates first).
    OWN_LEADER_GUARD = OWN_AUTHENTICATION

    def authenticate(self, request: server.Request) -> Any:
        """HTTP Basic before the handler, as --authenticate_http_readonly/readwrite require; the
        principal (or None) is left on the request for authorization."""
        security = self.master.security
        write = request.method not in (b"GET", b"HEAD")
        required = security.authenticate_http_readwrite if write else security.authenticate_http_readonly
        d = http_principal(security, request, REALM_READWRITE if write else REALM_READONLY, required)

        def bind(principal: str | None) -> None:
            request.principal = principal  # type: ignore[attr-defined]

        def count_refusal(failure: Failure) -> Failure:
            if failure.check(HTTPError) and failure.value.code == 401 and basic_credentials(request) is not None:
                self.master.metrics["http_authentication_failures"] += 1
            return failure

        return d.addCallbacks(bind, count_refusal)

    def state(self, request: server.Request) -> dict[str, Any]:
        return state_json.state(self.master, self.flags)

    def health(self, request: server.Request) -> Response:
        return Response(b"", 200)

    def snapshot(self, request: server.Request) -> dict[str, Any]:
        return metrics.snapshot(self.master, self.master.leading)

    def teardown(self, request: server.Request) -> Response:
        """POST ``frameworkId=<id>``: remove a framework and kill its tasks."""
        framework_id = query(request).get("frameworkId")
        if not framework_id:
            raise HTTPError(400, "Missing 'frameworkId' query parameter")
        principal = getattr(request, "principal", None)
        outcome = self.master.teardown(framework_id, principal)
        if outcome is TeardownOutcome.UNKNOWN_FRAMEWORK:
            raise HTTPError(400, f"No framework found with specified ID '{framework_id}'")
        if outcome is TeardownOutcome.NOT_AUTHORIZED:
            framework = self.master.frameworks[framework_id]
            raise HTTPError(403, f"Principal {principal or '(none)'} may not tear down frameworks of principal "
                                 f"{framework.info.principal or '(none)'}")
        return Response(b"", 200)

    def kill(self, request: server.Request) -> Response:
        """POST ``frameworkId=<id>&taskId=<id>``: kill one task (a mesostw extension for operators)."""
        params = query(request)
        framework_id, task_id = params.get("frameworkId"), params.get("taskId")
        if not framework_id or not task_id:
            raise HTTPError(400, "Expecting 'frameworkId' and 'taskId'")
        principal = getattr(request, "principal", None)
        outcome = self.master.operatorKill(framework_id, task_id, principal)
        if outcome is KillOutcome.UNKNOWN_TASK:
            raise HTTPError(404, f"Task {task_id} of framework {framework_id} is not known")
        if outcome is KillOutcome.NOT_AUTHORIZED:
            framework = self.master.frameworks[framework_id]
            raise HTTPError(403, f"Principal {principal or '(none)'} may not kill tasks of frameworks of principal "
                                 f"{framework.info.principal or '(none)'}")
        if outcome is KillOutcome.AGENT_NOT_CONNECTED:
            task = self.master.tasks.get(framework_id, task_id)
            raise HTTPError(409, f"Agent {task.agent_id if task else '(unknown)'} of task {task_id} is not connected")
        return Response(b"", 202)
