"""Quota messages (``mesos:include/mesos/v1/quota/quota.proto``): QuotaConfig, the legacy QuotaRequest
and QuotaInfo, and QuotaStatus.

A :class:`QuotaConfig` is one role's guarantees and limits, each a map of scalar resource name to
amount (``{"cpus": {"value": 2}}`` in JSON); it is what ``UPDATE_QUOTA`` takes, what ``GET_QUOTA``
answers and what the registry keeps. The pre-1.9 ``QuotaRequest`` (``SET_QUOTA``, ``POST /quota``)
gives guarantees as a Resource list, and those guarantees are its limits too.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from mesostw.model.resources import SCALAR, UNRESERVED, validate_role
from mesostw.model.validation import Reader, ValidationError, read

#: Mesos's bounds on quota values: memory and disk up to an exabyte (in MB), anything else a trillion.
MAX_BYTES_IN_MB = 1024 ** 4
MAX_OTHER = 10 ** 12
#: Resources that are not scalars: quota cannot apply to them.
NOT_SCALAR = frozenset({"ports"})


def validate_quota_role(role: str) -> str | None:
    """Why ``role`` cannot have a quota, or None: any valid role name, hierarchical ones (``eng/web``) and
    ``*`` included."""
    if not role:
        return "role must not be empty"
    return validate_role(role)


def _amounts(reader: Reader | None, key: str) -> dict[str, float]:
    """A map of resource name -> ``{"value": amount}`` (protobuf's JSON of ``map<string, Value.Scalar>``)."""
    holder = reader.obj(key) if reader is not None else None
    out: dict[str, float] = {}
    if holder is None:
        return out
    for name in sorted(holder.data):
        scalar = holder.obj(name)
        value = scalar.float("value", None, required=True) if scalar is not None else None
        if value is None:
            continue
        problem = _bad_amount(name, value)
        if problem:
            holder.error(problem, name)
            continue
        out[name] = value
    return out


def _bad_amount(name: str, value: float) -> str | None:
    if not name or len(name) > 255:
        return "is not a resource name"
    if name in NOT_SCALAR:
        return "is not a scalar resource: quota applies to scalars only"
    if not math.isfinite(value) or value < 0:
        return "must be a non-negative number"
    bound = MAX_BYTES_IN_MB if name in ("mem", "disk") else MAX_OTHER
    if value > bound:
        what = "1 exabyte" if name in ("mem", "disk") else "1 trillion"
        return f"values greater than {what} ({bound}) are not supported"
    return None


def _amounts_json(amounts: dict[str, float]) -> dict[str, Any]:
    return {name: {"value": value} for name, value in sorted(amounts.items())}


@attrs.frozen
class QuotaConfig:
    """A role's quota: guarantees and limits of scalar resources (a role not listed has neither)."""

    role: str
    guarantees: dict[str, float] = attrs.field(factory=dict)
    limits: dict[str, float] = attrs.field(factory=dict)

    @property
    def default(self) -> bool:
        """No guarantee and no limit: the quota every role has unless given one."""
        return not self.guarantees and not self.limits

    @classmethod
    def read(cls, r: Reader) -> QuotaConfig:
        role = r.str("role", "", required=True, max_len=1024)
        if role:
            problem = validate_quota_role(role)
            if problem:
                r.error(problem, "role")
        config = cls(role, _amounts(r, "guarantees"), _amounts(r, "limits"))
        for name, guarantee in config.guarantees.items():
            limit = config.limits.get(name)
            if limit is not None and guarantee > limit:
                r.error(f"{name} guarantee {guarantee:g} is more than its limit {limit:g}", "guarantees")
        return config

    @classmethod
    def from_json(cls, data: Any) -> QuotaConfig:
        return read(data, cls.read, "quota_config")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role}
        if self.guarantees:
            out["guarantees"] = _amounts_json(self.guarantees)
        if self.limits:
            out["limits"] = _amounts_json(self.limits)
        return out

    def info_json(self) -> dict[str, Any]:
        """The legacy ``QuotaInfo``: the role and its guarantees as a Resource list."""
        return {"role": self.role, "guarantee": scalar_resources(self.guarantees)}


def scalar_resources(amounts: dict[str, float]) -> list[dict[str, Any]]:
    """Amounts as v1 Resource objects (unreserved scalars)."""
    return [{"name": name, "type": SCALAR, "scalar": {"value": value}} for name, value in sorted(amounts.items())]


def read_request(r: Reader) -> tuple[QuotaConfig, bool]:
    """A legacy ``QuotaRequest`` (``{"role", "guarantee": [Resource], "force"}``) as a QuotaConfig whose
    guarantees are also its limits, and its ``force``."""
    role = r.str("role", "", required=True, max_len=1024)
    if role:
        problem = validate_quota_role(role)
        if problem:
            r.error(problem, "role")
    guarantees: dict[str, float] = {}
    for resource in r.objs("guarantee", max_items=1000):
        name = resource.str("name", None, required=True, max_len=255)
        if resource.enum("type", (SCALAR, "RANGES", "SET"), SCALAR) != SCALAR:
            resource.error("must be SCALAR: quota applies to scalars only", "type")
            continue
        if resource.has("reservations") or resource.str("role", UNRESERVED) != UNRESERVED:
            resource.error("must not be reserved", "reservations")
        if resource.has("disk") or resource.has("revocable"):
            resource.error("must not carry DiskInfo or RevocableInfo")
        scalar = resource.obj("scalar", required=True)
        value = scalar.float("value", None, required=True) if scalar is not None else None
        if name is None or value is None:
            continue
        problem = _bad_amount(name, value)
        if problem:
            resource.error(problem, "scalar")
        elif name in guarantees:
            resource.error(f"repeats resource {name!r}", "name")
        else:
            guarantees[name] = value
    if not guarantees and not r.errors:
        r.error("must not be empty", "guarantee")
    force = r.bool("force", False)
    return QuotaConfig(role, guarantees, dict(guarantees)), bool(force)


def status_json(configs: list[QuotaConfig]) -> dict[str, Any]:
    """A ``QuotaStatus``: the legacy ``infos`` (guarantees only) beside the ``configs``."""
    return {"infos": [c.info_json() for c in configs], "configs": [c.to_json() for c in configs]}


def parse_configs(items: list[Any], where: str = "quota_configs") -> list[QuotaConfig]:
    """QuotaConfigs of a JSON list; raises :class:`ValidationError` naming every problem."""
    errors: list[str] = []
    configs = []
    for index, item in enumerate(items):
        reader = Reader(item, f"{where}[{index}]", errors)
        configs.append(QuotaConfig.read(reader))
    seen: set[str] = set()
    for config in configs:
        if config.role in seen:
            errors.append(f"{where}: role {config.role!r} appears more than once")
        seen.add(config.role)
    if errors:
        raise ValidationError(errors)
    return configs
