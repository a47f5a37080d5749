"""A small blocking client of the service framework's REST API (Marathon's ``/v2``), for ``mesostw apps``.

Requests go through :data:`send` (``mesostw.cli.http.exchange`` unless a test swaps it for an
in-memory API); an error status becomes :class:`~mesostw.cli.http.HTTPStatusError` with Marathon's
``message`` and, for a 422, each field's problem. A 307/308 (a standby master hosting the framework)
is followed to the leader with the same method and body.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from mesostw.cli import http
from mesostw.cli.errors import CLIError, UsageError

DEFAULT_URL = "http://127.0.0.1:8080"
URL_VARIABLE = "MESOSTW_SERVICE_URL"
#: (method, url, body, headers, timeout) -> (status, body, headers): the one way requests leave (swapped in
#: tests for an in-memory API).
send: Callable[..., tuple[int, bytes, dict[str, str]]] = http.exchange
#: The most redirects followed for one request.
MAX_REDIRECTS = 3


def service_url(given: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The API's base URL: ``--url``, else ``$MESOSTW_SERVICE_URL``, else Marathon's default port here."""
    env = os.environ if environ is None else environ
    raw = (given or env.get(URL_VARIABLE) or DEFAULT_URL).strip()
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid service URL {raw!r}: expected http(s)://host:port")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"invalid service URL {raw!r}: bad port") from None
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def app_path(app_id: str) -> str:
    """An app id as a URL path segment (``/shop/web`` or ``shop/web`` -> ``shop/web``)."""
    cleaned = "/".join(p for p in app_id.split("/") if p)
    if not cleaned:
        raise UsageError(f"invalid app id {app_id!r}")
    return quote(cleaned, safe="/")


class ServiceAPI:
    """The API at ``url`` (``http://[user:password@]host:port``: credentials become HTTP Basic)."""

    def __init__(self, url: str, timeout: float = http.TIMEOUT):
        parts = urlsplit(url)
        self.headers = {"Accept": "application/json"}
        if parts.username is not None:
            pair = f"{parts.username}:{parts.password or ''}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            netloc = parts.hostname or ""
            netloc += f":{parts.port}" if parts.port else ""
            parts = parts._replace(netloc=netloc)
        self.base = urlunsplit(parts)
        self.timeout = timeout

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """The decoded JSON answer (None for an empty one); raises HTTPStatusError for an error status."""
        url = self.base + path
        if params:
            url += "?" + urlencode([(k, v) for k, values in params.items()
                                    for v in (values if isinstance(values, list) else [values])])
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        for _ in range(MAX_REDIRECTS + 1):
            status, raw, location = self._send(method, url, data, headers)
            if status in (307, 308) and location:
                url = location
                continue
            if status >= 400:
                raise http.HTTPStatusError(status, problem(status, raw, url), url)
            if not raw.strip():
                return None
            try:
                return json.loads(raw)
            except ValueError:
                raise CLIError(f"{url} did not answer with JSON") from None
        raise CLIError(f"{url}: too many redirects")

    def _send(self, method: str, url: str, data: bytes | None,
              headers: Mapping[str, str]) -> tuple[int, bytes, str | None]:
        status, raw, answer_headers = send(method, url, data, headers, self.timeout)
        return status, raw, answer_headers.get("location")


def problem(status: int, body: bytes, url: str) -> str:
    """Marathon's error message, with the field problems of a 422 (``/mem: must be positive``)."""
    message = http.error_message(status, body, url)
    try:
        details = json.loads(body).get("details") or []
    except (ValueError, AttributeError):
        details = []
    lines = []
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict):
            errors = detail.get("errors") or []
            lines.append(f"{detail.get('path', '/')}: {'; '.join(str(e) for e in errors)}")
    return "; ".join([message, *lines]) if lines else message
