"""Plumbing shared by the REST handlers: query parameters, JSON bodies, Marathon's answers.

Handlers are wrapped by :func:`endpoint`, which answers 503 until the framework has
recovered its state as leader, turns :class:`~frameworks.service.errors.ApiError`
(raised or failed) into Marathon's JSON error with its code, and adds the
``X-Marathon-Leader`` header.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server

from frameworks.service import pathid
from frameworks.service.deployments import Deployment
from frameworks.service.errors import ApiError, bad_json, not_found
from mesostw.http.router import Response, json_bytes, read_body
from mesostw.store import StoreError

MAX_BODY = 8 * 1024 * 1024
JSON = "application/json"


def values(request: server.Request, name: str) -> list[str]:
    """Every value of a query parameter (``embed`` and ``event_type`` repeat; ``status[]`` too)."""
    args: dict[bytes, list[bytes]] = request.args or {}
    out: list[str] = []
    for key in (name, name + "[]"):
        out.extend(v.decode("utf-8", "replace") for v in args.get(key.encode(), []))
    return out


def value(request: server.Request, name: str) -> str | None:
    found = values(request, name)
    return found[0] if found else None


def flag(request: server.Request, name: str, default: bool) -> bool:
    """A boolean query parameter in any case (``requests`` sends ``True``/``False``); 400 otherwise."""
    text = value(request, name)
    if text is None or text == "":
        return default
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ApiError(400, f"Query parameter '{name}' must be true or false, not '{text}'")


def body(request: server.Request) -> Any:
    """The request's JSON body; 400 Invalid JSON when it cannot be parsed."""
    raw = read_body(request, MAX_BODY)
    if not raw.strip():
        raise bad_json("error.expected.jsobject: the body is empty")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad_json(f"error.expected.json: {exc}") from None


def path_id(raw: str, what: str = "App") -> str:
    """A path parameter as a canonical id (``//foo`` and ``foo`` are ``/foo``); 404 if it cannot be one."""
    try:
        return pathid.canonical(raw)
    except pathid.InvalidPath:
        raise not_found(f"{what} '{raw}' does not exist") from None


def answer(payload: Any, code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(payload), code, {"Content-Type": JSON, **(headers or {})})


def deployment_result(deployment: Deployment, code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Marathon's ``{"deploymentId", "version"}`` with the ``Marathon-Deployment-Id`` header."""
    return answer({"deploymentId": deployment.id, "version": deployment.version}, code,
                  {"Marathon-Deployment-Id": deployment.id, **(headers or {})})


def error_response(error: ApiError) -> Response:
    return answer(error.body(), error.code)


def endpoint(api: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a handler: readiness, Marathon's errors, the leader header."""

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def run(request: server.Request, **params: Any) -> Any:
            if api.host.api_url:
                request.setHeader("X-Marathon-Leader", api.host.api_url)
            if not api.ready():
                return error_response(ApiError(503, "Leader is not ready yet: the framework is recovering"))
            try:
                result = handler(request, **params)
            except ApiError as exc:
                return error_response(exc)
            if isinstance(result, defer.Deferred):
                return result.addErrback(_api_failure)
            return result

        return run

    return wrap


def _api_failure(failure: Failure) -> Any:
    if failure.check(ApiError):
        return error_response(failure.value)
    if failure.check(StoreError):
        # nothing was applied: the change was not written (e.g. this instance lost its leadership)
        return error_response(ApiError(503, f"The change could not be stored: {failure.getErrorMessage()}"))
    return failure
