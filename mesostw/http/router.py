"""A small router for JSON endpoints on a Twisted web site.

Handlers take the request and return a JSON-able value (or a Deferred of
one), a :class:`Response` for other content, or raise :class:`HTTPError`,
which becomes a JSON body ``{"message": ...}`` with its status code. Any
other exception is logged and answered with 500, never taking the daemon down.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

log = Logger()

MAX_QUERY = 64 * 1024


class HTTPError(Exception):
    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


class Response:
    """A non-JSON answer: raw body bytes with a status and headers."""

    def __init__(self, body: bytes = b"", code: int = 200, headers: dict[str, str] | None = None):
        self.body, self.code, self.headers = body, code, headers or {}


Handler = Callable[[server.Request], Any]


def query(request: server.Request) -> dict[str, str]:
    """The query string (and a form body for POST) as a flat dict of first values."""
    raw = request.uri.split(b"?", 1)[1] if b"?" in request.uri else b""
    if len(raw) > MAX_QUERY:
        raise HTTPError(414, "query string is too long")
    out = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
    content_type = (header(request, "content-type") or "").split(";")[0].strip()
    if request.method == b"POST" and content_type == "application/x-www-form-urlencoded":
        body = read_body(request, MAX_QUERY)
        out.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()})
    return out


def header(request: server.Request, name: str) -> str | None:
    """A request header's (last) value as text; bytes that are not UTF-8 are replaced, not raised
    (Twisted's ``getHeader`` with a str name raises UnicodeDecodeError on them)."""
    values = request.requestHeaders.getRawHeaders(name.encode("latin-1"))
    return values[-1].decode("utf-8", "replace") if values else None


def read_body(request: server.Request, limit: int) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    body = content.read(limit + 1)
    if len(body) > limit:
        raise HTTPError(413, f"request body is larger than {limit} bytes")
    return body


def int_param(params: dict[str, str], name: str, default: int | None, minimum: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise HTTPError(400, f"Failed to parse '{name}': {value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise HTTPError(400, f"'{name}' must be at least {minimum}")
    return number


class Router(resource.Resource):
    """Dispatches on the exact request path (and method) to registered handlers."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[str, dict[bytes, Handler]] = {}
        self.fallback: Handler | None = None

    def route(self, path: str, handler: Handler, methods: tuple[str, ...] = ("GET", "HEAD")) -> None:
        table = self._routes.setdefault(path, {})
        for method in methods:
            table[method.encode()] = handler

    def routes(self) -> list[str]:
        return sorted(self._routes)

    def guard(self, check: Callable[[server.Request], HTTPError | None], exempt: set[str]) -> None:
        """Run ``check`` before every handler except those of ``exempt`` paths; an HTTPError it
        returns is the answer (e.g. a redirect to the leading master)."""
        self.wrap(lambda handler, path, method: _guarded(check, handler), exempt)

    def wrap(self, decorate: Callable[[Handler, str, bytes], Handler], exempt: set[str] = frozenset()) -> None:
        """Replace every handler (except those of ``exempt`` paths) by ``decorate(handler, path, method)``."""
        for path, table in self._routes.items():
            if path in exempt:
                continue
            for method, handler in table.items():
                table[method] = decorate(handler, path, method)

    def render(self, request: server.Request) -> Any:
        path = request.path.decode("utf-8", "replace")
        table = self._routes.get(path)
        if table is None and path.endswith("/") and len(path) > 1:
            table = self._routes.get(path.rstrip("/"))
        if table is None:
            if self.fallback is not None:
                handler = self.fallback
            else:
                return self._finish(request, HTTPError(404, f"No such endpoint: {path}"))
        else:
            handler = table.get(request.method)
            if handler is None:
                allowed = ", ".join(sorted(m.decode() for m in table))
                return self._finish(request, HTTPError(405, f"Expecting one of {{{allowed}}}, but received "
                                                       f"'{request.method.decode(errors='replace')}'",
                                                       {"Allow": allowed}))
        d = defer.maybeDeferred(handler, request)
        d.addBoth(lambda result: self._finish(request, result))
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, result: Any) -> Any:
        if result is server.NOT_DONE_YET or request.finished or getattr(request, "_disconnected", False):
            return server.NOT_DONE_YET
        if isinstance(result, Failure):
            if result.check(HTTPError):
                result = result.value
            else:
                log.failure("Endpoint {path} failed", result, path=request.path)
                result = HTTPError(500, f"Internal error: {result.getErrorMessage()}")
        if isinstance(result, HTTPError):
            for name, value in result.headers.items():
                request.setHeader(name, value)
            request.setResponseCode(result.code)
            body = json_bytes({"message": result.message}) if result.code != 204 else b""
            request.setHeader("Content-Type", "application/json")
        elif isinstance(result, Response):
            request.setResponseCode(result.code)
            for name, value in result.headers.items():
                request.setHeader(name, value)
            body = result.body
        else:
            body = json_bytes(result)
            try:
                callback = query(request).get("jsonp")
            except HTTPError:
                callback = None
            if callback and callback.replace("_", "").replace(".", "").isalnum():
                body = callback.encode() + b"(" + body + b");"
                request.setHeader("Content-Type", "text/javascript")
            else:
                request.setHeader("Content-Type", "application/json")
        request.setHeader("Content-Length", str(len(body)))
        if request.method != b"HEAD":
            request.write(body)
        request.finish()
        return server.NOT_DONE_YET


def _guarded(check: Callable[[server.Request], HTTPError | None], handler: Handler) -> Handler:
    def guarded(request: server.Request) -> Any:
        refusal = check(request)
        if refusal is not None:
            raise refusal
        return handler(request)

    return guarded


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")
