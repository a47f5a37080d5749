"""A small router for JSON endpoints on a Twisted web site.

Handlers take the request and return a JSON-able value (or a Deferred of
one), a :class:`Response` for other content, or raise :class:`HTTPError`,
which becomes a JSON body ``{"message": ...}`` with its status code. Any
other exception is logged and answered with 500, never taking the daemon down.
A large answer may be a :class:`~mesostw.http.stream.Fields` or
:class:`~mesostw.http.stream.Items`: it is written as it is built, without a
Content-Length (see :mod:`mesostw.http.stream`).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import parse_qs, unquote

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from mesostw.http import stream

log = Logger()

MAX_QUERY = 64 * 1024
#: The largest request body an endpoint takes unless it says otherwise (``Router.route(max_body=...)``).
DEFAULT_MAX_BODY = 1024 * 1024


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


#: A route's handler: called as ``handler(request, **params)`` with the pattern's parameters.
Handler = Callable[..., Any]


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
    """The body, at most ``limit`` bytes (413 beyond; a listening port refuses larger ones before buffering
    them, see :mod:`mesostw.wire.guard`)."""
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


Filter = Callable[[server.Request], Any]

_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


class _Pattern:
    """A route path with ``{name}`` (one segment) and ``{name:path}`` (one or more) parameters."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        parts, position, literal = [], 0, 0
        for match in _PARAM.finditer(pattern):
            text = pattern[position:match.start()]
            parts.append(re.escape(text))
            literal += len(text)
            parts.append(f"(?P<{match.group(1)}>{'.+' if match.group(2) else '[^/]+'})")
            position = match.end()
        parts.append(re.escape(pattern[position:]))
        literal += len(pattern) - position
        self.regex = re.compile("".join(parts) + "$")
        #: more literal text is more specific: ``/v2/apps/{id:path}/tasks`` before ``/v2/apps/{id:path}``
        self.specificity = literal

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


class Router(resource.Resource):
    """Dispatches on the request path (and method) to handlers, prefix mounts and a fallback.

    Exact paths are tried first, then patterns with ``{name}`` and ``{name:path}`` segments (most
    literal text first; the handler is called as ``handler(request, **params)``), then mounts by
    longest prefix. Filters (leader guards, authentication) run at dispatch time before every
    handler and mount, including those added after the filter, except for the route keys they exempt.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[str, dict[bytes, Handler]] = {}
        self._patterns: list[tuple[_Pattern, dict[bytes, Handler]]] = []
        self._mounts: list[tuple[str, resource.IResource]] = []
        self._filters: list[tuple[Filter, frozenset[str]]] = []
        #: filters that also run before a request's body is read (authentication), with their exemptions
        self._early: list[tuple[Filter, frozenset[str]]] = []
        #: route key -> (largest body it takes, its own check before the body is read)
        self._body_rules: dict[str, tuple[int, Filter | None]] = {}
        self.fallback: Handler | None = None

    def route(self, path: str, handler: Handler, methods: tuple[str, ...] = ("GET", "HEAD"),
              max_body: int | None = None, before_body: Filter | None = None) -> None:
        """Answer ``methods`` on ``path`` (which may hold ``{name}`` and ``{name:path}`` parameters).

        ``max_body``: the largest request body taken (default :data:`DEFAULT_MAX_BODY`), refused with 413
        before it is buffered; ``before_body``: a check (as a filter) run once the headers are in and
        before the body is read, e.g. the endpoint's own authentication."""
        if max_body is not None or before_body is not None:
            self._body_rules[path] = (DEFAULT_MAX_BODY if max_body is None else max_body, before_body)
        if _PARAM.search(path):
            table = next((t for p, t in self._patterns if p.pattern == path), None)
            if table is None:
                table = {}
                self._patterns.append((_Pattern(path), table))
                self._patterns.sort(key=lambda entry: -entry[0].specificity)
        else:
            table = self._routes.setdefault(path, {})
        for method in methods:
            table[method.encode()] = handler

    def mount(self, prefix: str, target: resource.IResource) -> None:
        """Serve every path under ``prefix`` with ``target`` (a Router, a ``static.File``, any
        resource); ``prefix`` "" or "/" mounts a root resource under everything else."""
        prefix = prefix.rstrip("/")
        self._mounts = [(p, t) for p, t in self._mounts if p != prefix] + [(prefix, target)]
        self._mounts.sort(key=lambda entry: -len(entry[0]))

    def routes(self) -> list[str]:
        return sorted([*self._routes, *(p.pattern for p, _ in self._patterns), *(p + "/" for p, _ in self._mounts)])

    def filter(self, check: Filter, exempt: Collection[str] = frozenset(), before_body: bool = False) -> None:
        """Run ``check(request)`` before every route, present or future, except the route keys
        (paths, patterns as registered, mount prefixes) in ``exempt``. It may return None, an
        HTTPError to answer with, or a Deferred of either; it may raise HTTPError. It may also answer
        the request itself (e.g. by proxying it elsewhere) and return ``server.NOT_DONE_YET``: then
        nothing else runs and the router writes nothing.

        ``before_body``: also run it as soon as the request's headers are in, before its body is read
        (see :meth:`admission`); it must then answer with None or an HTTPError only (authentication),
        and cope with running twice."""
        self._filters.append((check, frozenset(exempt)))
        if before_body:
            self._early.append((check, frozenset(exempt)))

    def admission(self, request: server.Request, length: int | None) -> Any:
        """Whether to read the body of ``request`` (its headers are in, its body is not): None, an
        HTTPError to refuse it with (413 for a ``length`` past the endpoint's limit; what an early
        filter answers), or a Deferred of either. Sets ``request.body_limit`` for bodies of unknown length."""
        try:
            limit, checks = self._admission(request.path.decode("utf-8", "replace"), request.method)
        except HTTPError:
            limit, checks = DEFAULT_MAX_BODY, []  # no such endpoint: the dispatch says so, after a short body
        request.body_limit = limit  # type: ignore[attr-defined]

        def size() -> HTTPError | None:
            if length is not None and length > limit:
                return HTTPError(413, f"Request body of {length} bytes is larger than the {limit} bytes it takes")
            return None

        if not checks:
            return size()
        # Authentication first: a client without credentials learns nothing of the endpoint's limits.
        return _run_filters(request, checks, size)

    def _admission(self, path: str, method: bytes) -> tuple[int, list[Filter]]:
        key, target, _ = self._resolve(path, method)
        checks = [check for check, exempt in self._early if key not in exempt]
        limit, own = self._body_rules.get(key, (DEFAULT_MAX_BODY, None))
        if own is not None:
            checks.append(own)
        if isinstance(target, Router):
            inner_limit, inner_checks = target._admission(path[len(key):] or "/", method)
            return inner_limit, checks + inner_checks
        return limit, checks

    def guard(self, check: Callable[[server.Request], HTTPError | None], exempt: Collection[str]) -> None:
        """A synchronous filter, e.g. a redirect to the leading master."""
        self.filter(check, exempt)

    def _resolve(self, path: str, method: bytes) -> tuple[str, Any, dict[str, str]]:
        """(route key, handler or mounted resource, params); raises HTTPError 404/405."""
        table = self._routes.get(path)
        key = path
        if table is None and path.endswith("/") and len(path) > 1:
            key = path.rstrip("/")
            table = self._routes.get(key)
        params: dict[str, str] = {}
        allowed: set[bytes] = set()
        if table is not None:
            handler = table.get(method)
            if handler is not None:
                return key, handler, params
            allowed.update(table)
        else:
            bare = path.rstrip("/") if len(path) > 1 else path
            for pattern, candidates in self._patterns:
                found = pattern.match(bare)
                if found is None:
                    continue
                handler = candidates.get(method)
                if handler is not None:
                    return pattern.pattern, handler, found
                allowed.update(candidates)
        if allowed:
            names = ", ".join(sorted(m.decode() for m in allowed))
            raise HTTPError(405, f"Expecting one of {{{names}}}, but received '{method.decode(errors='replace')}'",
                            {"Allow": names})
        for prefix, target in self._mounts:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, target, params
        if self.fallback is not None:
            return "", self.fallback, params
        raise HTTPError(404, f"No such endpoint: {path}")

    def render(self, request: server.Request) -> Any:
        d = self.dispatch(request, request.path.decode("utf-8", "replace"))
        d.addBoth(lambda result: self._finish(request, result))
        return server.NOT_DONE_YET

    def dispatch(self, request: server.Request, path: str) -> defer.Deferred:
        """Resolve ``path`` (the request's, less any mount prefix) and run filters and handler; the
        Deferred fires with the handler's result or fails with HTTPError (nothing is written yet)."""
        try:
            key, target, params = self._resolve(path, request.method)
        except HTTPError as exc:
            return defer.fail(exc)
        if isinstance(target, Router):
            remainder = path[len(key):] or "/"
            call: Callable[[], Any] = lambda: target.dispatch(request, remainder)
        elif resource.IResource.providedBy(target):
            call = lambda: self._render_mounted(request, len(path[len(key):].split("/")) - 1, target)
        else:
            call = lambda: target(request, **params)
        filters = [check for check, exempt in self._filters if key not in exempt]
        return _run_filters(request, filters, call) if filters else defer.maybeDeferred(call)

    def _render_mounted(self, request: server.Request, depth: int, target: resource.IResource) -> Any:
        """Hand the request to a mounted resource: its last ``depth`` segments become ``postpath``."""
        segments = request.path.split(b"/")[1:]
        split = len(segments) - depth
        request.prepath, request.postpath = segments[:split], segments[split:]
        child = resource.getChildForRequest(target, request)
        result = child.render(request)
        if result is server.NOT_DONE_YET:
            return server.NOT_DONE_YET
        if isinstance(result, bytes):
            request.setHeader("Content-Length", str(len(result)))
            if request.method != b"HEAD":
                request.write(result)
            request.finish()
            return server.NOT_DONE_YET
        return result

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
            try:
                callback = query(request).get("jsonp")
            except HTTPError:
                callback = None
            if not (callback and callback.replace("_", "").replace(".", "").isalnum()):
                callback = None
            request.setHeader("Content-Type", "text/javascript" if callback else "application/json")
            if isinstance(result, (stream.Fields, stream.Items)):
                return self._stream(request, result, callback)
            body = json_bytes(result)
            if callback:
                body = callback.encode() + b"(" + body + b");"
        request.setHeader("Content-Length", str(len(body)))
        if request.method != b"HEAD":
            request.write(body)
        request.finish()
        return server.NOT_DONE_YET

    def _stream(self, request: server.Request, result: Any, callback: str | None) -> Any:
        """Write a streamed JSON answer (chunked for HTTP/1.1) on the reactor of the request's site."""
        if request.method == b"HEAD":
            request.finish()
            return server.NOT_DONE_YET
        pieces = stream.chunks(result)
        if callback:
            pieces = itertools.chain([callback.encode() + b"("], pieces, [b");"])
        site = getattr(request, "site", None)
        clock = getattr(site, "reactor", None)
        if clock is None:
            from twisted.internet import reactor as clock
        stream.Streamer(request, pieces, clock).start()
        return server.NOT_DONE_YET


def _run_filters(request: server.Request, filters: list[Filter], call: Callable[[], Any]) -> defer.Deferred:
    """Run ``filters`` in order (each may be asynchronous), then ``call``; the first refusal answers."""

    def step(index: int) -> Any:
        while index < len(filters):
            refusal = filters[index](request)
            index += 1
            if isinstance(refusal, defer.Deferred):
                return refusal.addCallback(after, index)
            if refusal is server.NOT_DONE_YET:
                return refusal
            if refusal is not None:
                raise refusal
        return call()

    def after(refusal: Any, index: int) -> Any:
        if refusal is server.NOT_DONE_YET:
            return refusal
        if refusal is not None:
            raise refusal
        return step(index)

    return defer.maybeDeferred(step, 0)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")
