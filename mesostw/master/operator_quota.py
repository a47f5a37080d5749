"""Quota over the operator APIs: GET_QUOTA, UPDATE_QUOTA and the deprecated SET_QUOTA and REMOVE_QUOTA
(v1), and ``/quota`` (v0: GET, POST a QuotaRequest, DELETE ``/quota/<role>``), as Mesos 1.9+ serves them.

The ``get_quotas`` ACL (object: the role) decides which roles' quotas a caller sees; ``update_quotas``
(object: the role) whether it may change them, for every role of a request or the request is refused
(403) whole. Changes answer an empty 200 once the registry holds them (see
:class:`~mesostw.master.quota.QuotaManager` for what is checked first).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server

from mesostw.http.router import HTTPError, Response, Router, query, read_body
from mesostw.master.frameworks import RegistrationRefused
from mesostw.master.master import Master
from mesostw.master.quota import QuotaOvercommit, QuotaRefused
from mesostw.model.quota import QuotaConfig, parse_configs, read_request, status_json, validate_quota_role
from mesostw.model.validation import Reader, ValidationError, decode_json
from mesostw.operator.approvers import Approvers
from mesostw.operator.calls import CallContext, CallTable
from mesostw.operator.v1 import response

MAX_QUOTA_BODY = 1024 * 1024


def status(master: Master, approvers: Approvers) -> dict[str, Any]:
    """The QuotaStatus of the roles whose quota the caller may see (``get_quotas``)."""
    return status_json([c for c in master.quota.sorted() if approvers.allowed("get_quotas", c.role)])


def authorize(master: Master, principal: str | None, configs: list[QuotaConfig]) -> None:
    """403 unless ``update_quotas`` lets ``principal`` change the quota of every role in ``configs``."""
    denied = sorted({c.role for c in configs if not master.security.authorize("update_quotas", principal, c.role)})
    if denied:
        raise HTTPError(403, f"Principal {principal or '(none)'} may not update the quota of roles {', '.join(denied)}")


def update(master: Master, configs: list[QuotaConfig], force: bool, principal: str | None,
           legacy: bool = False) -> defer.Deferred:
    """Authorize, then have the master check, persist and apply ``configs``; fires with None, fails with
    HTTPError 400 (invalid), 409 (a legacy request overcommitting the cluster) or 503 (registry)."""
    authorize(master, principal, configs)

    def refused(failure: Failure) -> Any:
        if failure.check(QuotaOvercommit):
            raise HTTPError(409, failure.getErrorMessage())
        if failure.check(QuotaRefused):
            raise HTTPError(400, failure.getErrorMessage())
        if failure.check(RegistrationRefused):
            raise HTTPError(503, f"Failed to update quota: {failure.getErrorMessage()}")
        return failure

    return master.quota.update(configs, force, legacy).addCallbacks(lambda _: None, refused)


def legacy_set(master: Master, config: QuotaConfig, force: bool, principal: str | None) -> defer.Deferred:
    """SET_QUOTA and ``POST /quota``: a role without quota gets its guarantees (as limits too)."""
    if config.role in master.quota.configs:
        raise HTTPError(400, f"Failed to validate set quota request: Cannot set quota for role '{config.role}' "
                             f"which already has quota")
    return update(master, [config], force, principal, legacy=True)


def legacy_remove(master: Master, role: str, principal: str | None) -> defer.Deferred:
    """REMOVE_QUOTA and ``DELETE /quota/<role>``: the role gets the default quota back."""
    problem = validate_quota_role(role)
    if problem:
        raise HTTPError(400, f"Failed to validate remove quota request: {problem}")
    if role not in master.quota.configs:
        raise HTTPError(400, f"Failed to remove quota: Role '{role}' has no quota set")
    return update(master, [QuotaConfig(role)], True, principal, legacy=True)


def register(table: CallTable, master: Master) -> None:
    """Add GET_QUOTA, UPDATE_QUOTA, SET_QUOTA and REMOVE_QUOTA to ``table``."""

    def get_quota(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_QUOTA", {"status": status(master, context.approvers)})

    def update_quota(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        force = reader.bool("force", False)
        items = reader.list("quota_configs", max_items=10_000)
        reader.check()
        configs = parse_configs(items, reader.where("quota_configs"))
        return update(master, configs, bool(force), context.principal)

    def set_quota(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        request = reader.obj("quota_request", required=True)
        config, force = read_request(request) if request is not None else (QuotaConfig(""), False)
        reader.check()
        return legacy_set(master, config, force, context.principal)

    def remove_quota(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        role = reader.str("role", None, required=True, max_len=1024)
        reader.check()
        return legacy_remove(master, role, context.principal)

    table.register("GET_QUOTA", get_quota)
    table.register("UPDATE_QUOTA", update_quota, required=True)
    table.register("SET_QUOTA", set_quota, required=True)
    table.register("REMOVE_QUOTA", remove_quota, required=True)


class QuotaEndpoints:
    """``/quota`` and ``/master/quota``: GET the QuotaStatus, POST a QuotaRequest, DELETE ``/quota/<role>``."""

    def __init__(self, master: Master):
        self.master = master

    def install(self, router: Router) -> None:
        for prefix in ("/master", ""):
            router.route(f"{prefix}/quota", self.get, methods=("GET", "HEAD"))
            router.route(f"{prefix}/quota", self.post, methods=("POST",), max_body=MAX_QUOTA_BODY)
            router.route(f"{prefix}/quota/{{role:path}}", self.delete,  # type: ignore[arg-type]
                         methods=("DELETE",))

    def get(self, request: server.Request) -> dict[str, Any]:
        principal = getattr(request, "principal", None)
        return status(self.master, Approvers(self.master.security, principal))

    def post(self, request: server.Request) -> defer.Deferred:
        body = read_body(request, MAX_QUOTA_BODY)
        try:
            data = decode_json(body, "the set quota request")
            errors: list[str] = []
            config, force = read_request(Reader(data, "quota_request", errors))
            if errors:
                raise ValidationError(errors)
        except ValidationError as exc:
            raise HTTPError(400, f"Failed to validate set quota request: {exc}") from None
        d = legacy_set(self.master, config, force, getattr(request, "principal", None))
        return d.addCallback(lambda _: Response(b"", 200))

    def delete(self, request: server.Request, role: str) -> defer.Deferred:
        role = role.strip("/") or query(request).get("role", "")
        d = legacy_remove(self.master, role, getattr(request, "principal", None))
        return d.addCallback(lambda _: Response(b"", 200))
