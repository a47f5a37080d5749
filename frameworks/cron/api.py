"""Chronos's REST API on the framework's router: ``/v1/scheduler/*`` (3.x) and ``/scheduler/*`` (2.x,
which also takes PUT to add jobs), plus the unprefixed ``/ping``, ``/metrics`` and ``/leader``.

Status codes and bodies are Chronos's: a change answers 204 once it is written to the store; any
problem, an unknown job included, is a 400 with ``{"status": "Bad Request", "message": ...}``. The
graph comes as text. Beyond Chronos: ``job/history/{name}`` and ``nextRun``/``missedCount`` on jobs.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server

from frameworks.cron import views
from frameworks.cron.jobs import JobInvalid
from frameworks.cron.planner import UnknownJob
from frameworks.cron.runs import parse_task_id
from mesostw.auth.http import basic_credentials
from mesostw.http.router import HTTPError, Response, Router, header, query, read_body
from mesostw.store import StoreError

if TYPE_CHECKING:
    from frameworks.cron.service import CronService

log = Logger()

PREFIXES = ("/v1/scheduler", "/scheduler")
LEGACY = "/scheduler"
MAX_BODY = 1 << 20
JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
_STATUS = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}


def error(code: int, message: str) -> Response:
    """Chronos's ApiResult: ``{"status": "<reason>", "message": "..."}``."""
    body = json.dumps({"status": _STATUS.get(code, "Error"), "message": message}).encode()
    return Response(body, code, dict(JSON))


def no_content() -> Response:
    return Response(b"", 204)


def _as_error(failure: Failure) -> Any:
    if failure.check(JobInvalid):
        return error(400, "; ".join(failure.value.errors))
    if failure.check(UnknownJob):
        return error(400, failure.value.message)
    if failure.check(HTTPError):
        return failure
    if failure.check(StoreError):
        return error(503, "The job store refused the change: this instance no longer leads")
    log.failure("Cron API call failed", failure)
    return error(500, failure.getErrorMessage())


Handler = Callable[..., Any]


def chronos(method: Handler) -> Handler:
    """Answer 503 until the framework has recovered, and turn errors into Chronos's error bodies."""

    @functools.wraps(method)
    def wrapped(self: CronAPI, request: server.Request, **params: str) -> Any:
        if not self.cron.ready:
            return error(503, "The cron framework is starting or no longer leads; try again shortly")
        return defer.maybeDeferred(method, self, request, **params).addErrback(_as_error)

    return wrapped


class CronAPI:
    def __init__(self, cron: CronService):
        self.cron = cron

    @property
    def planner(self) -> Any:
        return self.cron.planner

    def install(self, router: Router) -> None:
        credentials = getattr(self.cron.config, "http_credentials", "") or ""
        if credentials:
            router.filter(basic_auth(credentials), exempt=("/ping",))
        for p in PREFIXES:
            writes = ("POST", "PUT") if p == LEGACY else ("POST",)
            router.route(f"{p}/jobs", self.list_jobs)
            router.route(f"{p}/jobs/search", self.search)
            router.route(f"{p}/jobs/summary", self.summary)
            router.route(f"{p}/iso8601", self.post_scheduled, writes)
            router.route(f"{p}/dependency", self.post_dependent, writes)
            router.route(f"{p}/job/{{name}}", self.get_job)
            router.route(f"{p}/job/{{name}}", self.run_job, ("PUT",))
            router.route(f"{p}/job/{{name}}", self.delete_job, ("DELETE",))
            router.route(f"{p}/job/stat/{{name}}", self.job_stat)
            router.route(f"{p}/job/history/{{name}}", self.job_history)
            router.route(f"{p}/job/success/{{name}}", self.mark_success, ("PUT",))
            router.route(f"{p}/job/{{name}}/task/{{task}}/progress", self.progress, ("POST",))
            router.route(f"{p}/task/kill/{{name}}", self.kill_tasks, ("DELETE",))
            router.route(f"{p}/stats/{{which}}", self.stats)
            router.route(f"{p}/graph/dot", self.dot)
            router.route(f"{p}/graph/csv", self.csv)
            router.route(f"{p}/leader", self.leader)
        router.route("/leader", self.leader)
        router.route("/ping", self.ping)
        router.route("/metrics", self.metrics)
        router.route("/metrics/prometheus", self.prometheus)

    # -- reads ---------------------------------------------------------------------------------------

    @chronos
    def list_jobs(self, request: server.Request) -> Response:
        return Response(views.jobs_bytes(self.planner, list(self.planner.names), self.cron.now()), 200, dict(JSON))

    @chronos
    def search(self, request: server.Request) -> Response:
        params = query(request)
        limit, offset = _int(params, "limit", 10), _int(params, "offset", 0)
        names = views.search(self.planner, params.get("name", ""), params.get("command", ""),
                             params.get("any", ""), limit, offset)
        return Response(views.jobs_bytes(self.planner, names, self.cron.now()), 200, dict(JSON))

    @chronos
    def summary(self, request: server.Request) -> Any:
        return views.summary(self.planner, self.cron.now())

    @chronos
    def get_job(self, request: server.Request, name: str) -> Response:
        record = self.planner.record(name)
        return Response(views.job_bytes(self.planner, record, self.cron.now()), 200, dict(JSON))

    @chronos
    def job_stat(self, request: server.Request, name: str) -> Any:
        return views.stat(self.planner, self.planner.record(name))

    @chronos
    def job_history(self, request: server.Request, name: str) -> Any:
        return views.history(self.planner, self.planner.record(name), self.cron.now())

    @chronos
    def stats(self, request: server.Request, which: str) -> Any:
        return views.percentile(self.planner, which)

    @chronos
    def dot(self, request: server.Request) -> Response:
        return Response(views.graph_dot(self.planner).encode(), 200, dict(TEXT))

    @chronos
    def csv(self, request: server.Request) -> Response:
        return Response(views.graph_csv(self.planner).encode(), 200, dict(TEXT))

    def leader(self, request: server.Request) -> Any:
        other = self.cron.host.leader()
        mine = str(self.cron.host.api_url or "").split("://", 1)[-1].rstrip("/")
        return {"leader": other or mine}

    def ping(self, request: server.Request) -> Response:
        return Response(b"pong", 200, dict(TEXT))

    def metrics(self, request: server.Request) -> Any:
        """Dropwizard-shaped JSON (what chronos-python reads), or Prometheus text for scrapers that ask."""
        accept = (header(request, "accept") or "").lower()
        wants_text = "text/plain" in accept or "openmetrics" in accept
        if query(request).get("format") == "prometheus" or (wants_text and "application/json" not in accept):
            return self.prometheus(request)
        return self.cron.metrics.json()

    def prometheus(self, request: server.Request) -> Response:
        return Response(self.cron.metrics.prometheus(), 200, {"Content-Type": "text/plain; version=0.0.4"})

    # -- changes -------------------------------------------------------------------------------------

    def _write(self, effects: Any, answer: Response | None = None) -> defer.Deferred:
        d = self.cron.apply(effects)
        return d.addCallback(lambda _: answer if answer is not None else no_content())

    def _body(self, request: server.Request) -> Any:
        raw = read_body(request, MAX_BODY)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise JobInvalid([f"the body is not JSON: {exc}"]) from None

    @chronos
    def post_scheduled(self, request: server.Request) -> defer.Deferred:
        return self._write(self.planner.put_job(self._body(request), "iso8601", self.cron.now()))

    @chronos
    def post_dependent(self, request: server.Request) -> defer.Deferred:
        return self._write(self.planner.put_job(self._body(request), "dependency", self.cron.now()))

    @chronos
    def run_job(self, request: server.Request, name: str) -> defer.Deferred:
        arguments = query(request).get("arguments")
        return self._write(self.planner.run_job(name, arguments, self.cron.now()))

    @chronos
    def delete_job(self, request: server.Request, name: str) -> defer.Deferred:
        return self._write(self.planner.delete_job(name, self.cron.now()))

    @chronos
    def kill_tasks(self, request: server.Request, name: str) -> defer.Deferred:
        return self._write(self.planner.kill_tasks(name, self.cron.now()))

    @chronos
    def mark_success(self, request: server.Request, name: str) -> defer.Deferred:
        done, effects = self.planner.mark_success(name, self.cron.now())
        text = f"marked job {name} as successful: {'true' if done else 'false'}"
        return self._write(effects, Response(text.encode(), 200, dict(TEXT)))

    @chronos
    def progress(self, request: server.Request, name: str, task: str) -> Any:
        if parse_task_id(task) is None:
            raise JobInvalid([f"Invalid task id format {task}"])
        body = self._body(request)
        count = body.get("numAdditionalElementsProcessed") if isinstance(body, dict) else None
        if count is not None:
            if not isinstance(count, int) or isinstance(count, bool):
                raise JobInvalid(["numAdditionalElementsProcessed must be a whole number"])
            return self._write(self.planner.progress(name, task, count, self.cron.now()))
        self.planner.record(name)
        return no_content()


def basic_auth(credentials: str) -> Callable[[server.Request], HTTPError | None]:
    """A router filter accepting HTTP Basic with one of ``user:password[,user:password...]``; the 401
    carries the challenge without which chronos-python never sends its credentials."""
    allowed = [entry.strip().encode() for entry in credentials.split(",") if ":" in entry]

    def check(request: server.Request) -> HTTPError | None:
        given = basic_credentials(request)
        if given is not None:
            offered = given.username + b":" + given.password
            if any(hmac.compare_digest(offered, entry) for entry in allowed):
                return None
        return HTTPError(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="Chronos"'})

    return check


def _int(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)  # type: ignore[arg-type]
    except ValueError:
        raise JobInvalid([f"{name} must be a whole number, not '{value}'"]) from None
    if number < 0:
        raise JobInvalid([f"{name} must be at least 0"])
    return number
