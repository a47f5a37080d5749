"""Blocking JSON over HTTP for the CLI, with one-line errors instead of tracebacks.

Requests go straight to the cluster (environment proxies are ignored: masters and agents are
internal addresses). An HTTP error status becomes :class:`HTTPStatusError` carrying the
``{"message": ...}`` that mesostw's endpoints put in error bodies; a connection problem becomes a
:class:`~mesostw.cli.errors.CLIError` naming the address that could not be reached.

With ``LIBPROCESS_SSL_ENABLED`` set (as for the daemons), or a master given as ``https://...``,
requests use HTTPS, verified with the ``LIBPROCESS_SSL_*`` settings (CA file or directory, and a
client certificate for masters that require one; see :mod:`mesostw.auth.tls`).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from collections.abc import Mapping
from typing import Any
from urllib import error, request
from urllib.parse import urlencode, urlsplit

from mesostw.cli.errors import CLIError, UsageError

DEFAULT_MASTER = "127.0.0.1:5050"
DEFAULT_PORT = 5050
TIMEOUT = 10.0

_opener = request.build_opener(request.ProxyHandler({}))
_https_opener: request.OpenerDirector | None = None


class HTTPStatusError(CLIError):
    """The server answered with an error status (4xx/5xx)."""

    def __init__(self, status: int, message: str, url: str):
        super().__init__(message)
        self.status = status
        self.url = url


def tls_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``LIBPROCESS_SSL_ENABLED`` (or the pre-1.0 ``SSL_ENABLED``) asks for TLS."""
    env = os.environ if environ is None else environ
    value = env.get("LIBPROCESS_SSL_ENABLED") or env.get("SSL_ENABLED") or ""
    return value.strip().lower() in ("true", "1", "yes", "on")


def parse_master(text: str, default_port: int = DEFAULT_PORT,
                 environ: Mapping[str, str] | None = None) -> tuple[str, str, int]:
    """``host:port``, ``http(s)://host:port[/...]`` or ``master@host:port`` into (scheme, host, port).

    Without a scheme it is ``https`` when TLS is enabled in the environment, else ``http``.
    """
    raw = text.strip()
    scheme = "https" if tls_enabled(environ) else "http"
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


def exchange(method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
             timeout: float = TIMEOUT) -> tuple[int, bytes, dict[str, str]]:
    """One request; (status, body, headers with lower-case names) whatever the status, 4xx, 5xx and
    redirects a GET does not follow included. Only a connection problem raises (:class:`CLIError`)."""
    return _open(request.Request(url, data=body, method=method, headers=dict(headers or {})), timeout)


def post_json(url: str, body: Any, timeout: float = TIMEOUT) -> Any:
    """POST ``body`` as JSON (an operator API Call) and decode the JSON answer (None for an empty one)."""
    _, answer = _request(_json_request(url, body), timeout)
    return _decode(answer, url) if answer.strip() else None


def open_stream(url: str, body: Any, timeout: float) -> Any:
    """POST ``body`` as JSON and return the open response of a stream (its reads time out after
    ``timeout`` seconds without data); errors as :func:`get_json`."""
    req = _json_request(url, body)
    where = _server(url)
    opener = _https() if url.lower().startswith("https:") else _opener
    try:
        return opener.open(req, timeout=timeout)
    except error.HTTPError as exc:
        raise HTTPStatusError(exc.code, error_message(exc.code, _read(exc), url), url) from None
    except error.URLError as exc:
        raise CLIError(f"cannot reach {where}: {_reason(exc.reason)}") from None
    except TimeoutError:
        raise CLIError(f"{where} did not answer within {timeout:g} seconds") from None
    except (http.client.HTTPException, OSError) as exc:
        raise CLIError(f"lost the connection to {where}: {_reason(exc)}") from None


def _json_request(url: str, body: Any) -> request.Request:
    return request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                           headers={"Content-Type": "application/json", "Accept": "application/json"})


def _request(req: request.Request, timeout: float) -> tuple[int, bytes]:
    status, body, _ = _open(req, timeout)
    if status >= 400:
        raise HTTPStatusError(status, error_message(status, body, req.full_url), req.full_url)
    return status, body


def _open(req: request.Request, timeout: float) -> tuple[int, bytes, dict[str, str]]:
    url = req.full_url
    where = _server(url)
    opener = _https() if url.lower().startswith("https:") else _opener
    try:
        with opener.open(req, timeout=timeout) as response:
            return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
    except error.HTTPError as exc:
        headers = {k.lower(): v for k, v in exc.headers.items()} if exc.headers is not None else {}
        return exc.code, _read(exc), headers
    except error.URLError as exc:
        raise CLIError(f"cannot reach {where}: {_reason(exc.reason)}") from None
    except TimeoutError:
        raise CLIError(f"{where} did not answer within {timeout:g} seconds") from None
    except (http.client.HTTPException, OSError) as exc:
        raise CLIError(f"lost the connection to {where}: {_reason(exc)}") from None


def _https() -> request.OpenerDirector:
    """The HTTPS opener, with a context made once from the ``LIBPROCESS_SSL_*`` environment."""
    global _https_opener
    if _https_opener is None:
        import attrs

        from mesostw.auth.tls import TLSConfigError, tls_from

        try:
            # An https:// master asks for TLS even where LIBPROCESS_SSL_ENABLED does not.
            tls = attrs.evolve(tls_from(None, os.environ, server=False), enabled=True).check(server=False)
            context = tls.ssl_context()
        except TLSConfigError as exc:
            raise CLIError(str(exc)) from None
        _https_opener = request.build_opener(request.ProxyHandler({}), request.HTTPSHandler(context=context))
    return _https_opener


def _decode(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise CLIError(f"{url} did not answer with JSON") from None


def _read(exc: error.HTTPError) -> bytes:
    try:
        return exc.read()
    except (OSError, http.client.HTTPException):
        return b""


def error_message(status: int, body: bytes, url: str) -> str:
    """The ``message`` of a JSON error body, else its first line, else the status and the URL."""
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return decoded["message"]
    text = body.decode("utf-8", "replace").strip().splitlines()
    if text and len(text[0]) <= 200:
        return f"HTTP {status}: {text[0]}"
    return f"HTTP {status} from {url}"


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {reason.verify_message}"
    if isinstance(reason, ssl.SSLError):
        return f"TLS handshake failed: {reason.reason or reason}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _server(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
