"""Content negotiation for the v1 APIs (JSON only; protobuf is refused with 415)."""

from __future__ import annotations

from mesostw.http.router import HTTPError

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


def media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    types = {media_type(part) for part in accept.split(",")}
    return bool(types & {JSON, "*/*", "application/*"})


def check_json_call(content_type: str | None, accept: str | None) -> None:
    """The checks Mesos makes on a v1 API request's headers, in its order."""
    kind = media_type(content_type)
    if not kind:
        raise HTTPError(400, "Expecting 'Content-Type' to be present")
    if kind == PROTOBUF:
        raise HTTPError(415, "Content-Type 'application/x-protobuf' is not supported by mesostw; "
                             "send 'application/json'")
    if kind != JSON:
        raise HTTPError(415, f"Expecting 'Content-Type' of {JSON} or {PROTOBUF}")
    if not accepts_json(accept):
        raise HTTPError(406, f"Expecting 'Accept' to allow {JSON}")
