"""Marathon's error answers: ``{"message": ..., "details": [{"path": ..., "errors": [...]}]}``.

Validation collects every problem first (:class:`Problems`) and reports them all at
once as a 422, the way Marathon does; other refusals carry their own code (400 bad
JSON, 404 unknown object, 409 conflicts with the deployments that lock an app).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer with a Marathon-shaped JSON body; ``extra`` adds top-level keys (``deployments``)."""

    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None,
                 **extra: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.details:
            out["details"] = self.details
        out.update(self.extra)
        return out


class Problems:
    """Validation problems by JSON path, in the order found."""

    def __init__(self) -> None:
        self._by_path: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        errors = self._by_path.setdefault(path or "/", [])
        if message not in errors:
            errors.append(message)

    def extend(self, other: Problems, prefix: str = "") -> None:
        for path, errors in other._by_path.items():
            for message in errors:
                self.add(prefix + (path if path != "/" else "") or "/", message)

    def __bool__(self) -> bool:
        return bool(self._by_path)

    def details(self) -> list[dict[str, Any]]:
        return [{"path": path, "errors": list(errors)} for path, errors in self._by_path.items()]

    def error(self) -> ApiError:
        return invalid(self.details())

    def raise_if_any(self) -> None:
        if self:
            raise self.error()


def invalid(details: list[dict[str, Any]]) -> ApiError:
    return ApiError(422, "Object is not valid", details)


def bad_json(message: str = "Invalid JSON", path: str = "/") -> ApiError:
    return ApiError(400, "Invalid JSON", [{"path": path, "errors": [message]}])


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def locked(deployment_ids: list[str]) -> ApiError:
    return ApiError(409, "App is locked by one or more deployments. Override with the option '?force=true'. "
                         "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
                    deployments=[{"id": d} for d in deployment_ids])
