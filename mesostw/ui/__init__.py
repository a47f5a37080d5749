"""The web UI: one page application shipped inside the package, served by the daemons themselves.

:class:`Assets` holds the files under ``static/`` in memory (they are small: tens of kilobytes) with
their gzip form and an ETag, so that a first load is a handful of small answers and a reload costs
304s. :class:`WebUI` registers ``/`` (the page), ``/ui/{path}`` (scripts and styles) and
``/ui/config`` (what this daemon serves: cluster pages on a master, a framework's pages on its own
port) on a Router. The page holds no data: whoever serves it keeps its data endpoints behind their
own authentication, and the page asks for credentials when they answer 401.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
from collections.abc import Callable
from typing import Any

from twisted.web import server

from mesostw.http.router import HTTPError, Response, Router, header

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
INDEX = "index.html"

#: What the page may load and where it may connect: itself only. Data never becomes markup (the
#: scripts build text nodes), and this policy is the second line should that ever slip.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                           "form-action 'self'")

#: Route keys of the UI, for filters that exempt them (the page and its assets are public, data is not).
PUBLIC_ROUTES = frozenset({"/", "/ui/config", "/ui/{path:path}"})

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}


class Asset:
    """One file: its bytes, gzip form, media type and ETag."""

    def __init__(self, name: str, body: bytes):
        self.name = name
        self.body = body
        self.gzipped = gzip.compress(body, 9, mtime=0)
        extension = os.path.splitext(name)[1]
        self.content_type = _TYPES.get(extension) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


class Assets:
    """The files below ``root`` by their path relative to it (``js/app.js``)."""

    def __init__(self, root: str = STATIC):
        self.files: dict[str, Asset] = {}
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, root).replace(os.sep, "/")
                with open(path, "rb") as f:
                    self.files[relative] = Asset(relative, f.read())

    def size(self, gzipped: bool = False) -> int:
        """Bytes of every file (as sent gzipped, or not)."""
        return sum(len(a.gzipped if gzipped else a.body) for a in self.files.values())

    def answer(self, request: server.Request, name: str) -> Response:
        asset = self.files.get(name)
        if asset is None:
            raise HTTPError(404, f"No such file in the web UI: {name}")
        headers = {"Content-Type": asset.content_type, "ETag": asset.etag, "Cache-Control": "no-cache",
                   "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
        if name == INDEX:
            headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            headers["X-Frame-Options"] = "DENY"
            headers["Referrer-Policy"] = "no-referrer"
        if header(request, "if-none-match") == asset.etag:
            return Response(b"", 304, headers)
        body = asset.body
        if "gzip" in (header(request, "accept-encoding") or ""):
            body = asset.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, 200, headers)


class WebUI:
    """Registers the UI on a Router; ``config`` says what the page shows (see ``/ui/config``)."""

    def __init__(self, config: Callable[[], dict[str, Any]], assets: Assets | None = None):
        self.config = config
        self.assets = assets if assets is not None else Assets()

    def install(self, router: Router) -> None:
        router.route("/", self.index)
        router.route("/ui/config", lambda request: self.config())
        router.route("/ui/{path:path}", self.asset)

    def index(self, request: server.Request) -> Response:
        return self.assets.answer(request, INDEX)

    def asset(self, request: server.Request, path: str) -> Response:
        return self.assets.answer(request, path)
