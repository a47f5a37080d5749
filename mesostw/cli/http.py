"""Blocking JSON over HTTP for the CLI, with one-line errors instead of tracebacks.

Requests go straight to the cluster (environment proxies are ignored: masters and agents are
internal addresses). An HTTP error status becomes :class:`HTTPStatusError` carrying the
``{"message": ...}`` that mesostw's endpoints put in error bodies; a connection problem becomes a
:class:`~mesostw.cli.errors.CLIError` naming the address that could not be reached.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from typing import Any
from urllib import error, request
from urllib.parse import urlencode, urlsplit

from mesostw.cli.errors import CLIError, UsageError

DEFAULT_MASTER = "127.0.0.1:5050"
DEFAULT_PORT = 5050
TIMEOUT = 10.0

_opener = request.build_opener(request.ProxyHandler({}))


class HTTPStatusError(CLIError):
    """The server answered with an error status (4xx/5xx)."""

    def __init__(self, status: int, message: str, url: str):
        super().__init__(message)
        self.status = status
        self.url = url


def parse_master(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, str, int]:
    """``host:port``, ``http(s)://host:port[/...]`` or ``master@host:port`` into (scheme, host, port)."""
    raw = text.strip()
    scheme = "http"
    rest = raw
    if "://" in raw:
        scheme, rest = raw.split("://", 1)
        scheme = scheme.lower()
        if scheme == "zk":
            raise UsageError(f"ZooKeeper master URLs are not supported here ({raw!r}); give the leader's host:port")
        if scheme not in ("http", "https"):
            raise UsageError(f"invalid master {raw!r}: expected host:port or http://host:port")
    rest = rest.split("/", 1)[0]
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    if rest.startswith("[") and rest.endswith("]"):
        host, port = rest, str(default_port)
    else:
        host, sep, port = rest.rpartition(":")
        if not sep:
            host, port = rest, str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"invalid master {raw!r}: expected host:port or http://host:port")
    return scheme, host, int(port)


def base_url(master: str) -> str:
    """The URL prefix of a master (or agent) given as the user typed it."""
    scheme, host, port = parse_master(master)
    return f"{scheme}://{host}:{port}"


def get_json(url: str, params: Mapping[str, Any] | None = None, timeout: float = TIMEOUT) -> Any:
    """GET ``url`` (with ``params`` as its query string) and decode the JSON answer."""
    if params:
        url = f"{url}?{urlencode(params)}"
    _, body = _request(request.Request(url, headers={"Accept": "application/json"}), timeout)
    return _decode(body, url)


def post_form(url: str, fields: Mapping[str, str], timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """POST ``fields`` form-encoded; returns (status, body) of a successful answer."""
    body = urlencode(fields).encode("ascii")
    req = request.Request(url, data=body, method="POST",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    return _request(req, timeout)


def _request(req: request.Request, timeout: float) -> tuple[int, bytes]:
    url = req.full_url
    where = _server(url)
    try:
        with _opener.open(req, timeout=timeout) as response:
            return response.status, response.read()
    except error.HTTPError as exc:
        raise HTTPStatusError(exc.code, _error_message(exc), url) from None
    except error.URLError as exc:
        raise CLIError(f"cannot reach {where}: {_reason(exc.reason)}") from None
    except TimeoutError:
        raise CLIError(f"{where} did not answer within {timeout:g} seconds") from None
    except (http.client.HTTPException, OSError) as exc:
        raise CLIError(f"lost the connection to {where}: {_reason(exc)}") from None


def _decode(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise CLIError(f"{url} did not answer with JSON") from None


def _error_message(exc: error.HTTPError) -> str:
    try:
        body = exc.read()
    except (OSError, http.client.HTTPException):
        body = b""
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return decoded["message"]
    text = body.decode("utf-8", "replace").strip().splitlines()
    if text and len(text[0]) <= 200:
        return f"HTTP {exc.code}: {text[0]}"
    return f"HTTP {exc.code} {exc.reason} from {exc.url}"


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _server(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
