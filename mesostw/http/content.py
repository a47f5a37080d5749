"""Content negotiation for the v1 APIs (JSON only; protobuf is refused with 415).

Mesos checks a Call's headers in two steps around decoding its body:
``Content-Type`` first (400 if missing, 415 if unknown), then the body (400),
then ``Accept`` (406). :func:`check_content_type` and :func:`check_accept` are
those two steps.
"""

from __future__ import annotations

from mesostw.http.router import HTTPError

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


def media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def accepts_json(accept: str | None) -> bool:
    """Whether an ``Accept`` header admits JSON: the most specific matching range decides, and
    ``q=0`` means "not acceptable" (RFC 7231 5.3.2, as libprocess's ``acceptsMediaType``)."""
    if not accept or not accept.strip():
        return True
    best: tuple[int, float] | None = None
    for part in accept.split(","):
        kind, *params = part.split(";")
        specificity = {JSON: 2, "application/*": 1, "*/*": 0}.get(kind.strip().lower())
        if specificity is None:
            continue
        quality = _quality(params)
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return best is not None and best[1] > 0


def check_content_type(content_type: str | None) -> None:
    """Mesos's first check: a ``Content-Type`` must be there, and be one it can decode."""
    kind = media_type(content_type)
    if not kind:
        raise HTTPError(400, "Expecting 'Content-Type' to be present")
    if kind == PROTOBUF:
        raise HTTPError(415, "Content-Type 'application/x-protobuf' is not supported by mesostw; "
                             "send 'application/json'")
    if kind != JSON:
        raise HTTPError(415, f"Expecting 'Content-Type' of {JSON} or {PROTOBUF}")


def check_accept(accept: str | None) -> None:
    """Mesos's check once the Call is decoded and valid: the answer must be acceptable."""
    if not accepts_json(accept):
        raise HTTPError(406, f"Expecting 'Accept' to allow {JSON}")

