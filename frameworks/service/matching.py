"""Offer matching: which instances an offer can take, with which resources and host ports.

Pure. :func:`match_offer` walks the apps waiting to launch and places as many of
their instances on the offer as fit (up to a per-offer cap), honouring accepted
roles, constraints (including the instances placed earlier on the same offer),
scalar resources and ports (``requirePorts`` asks for the declared ports
themselves). For an app that gets nothing it reports Marathon's reason
(``UnfulfilledConstraint``, ``InsufficientMemory`` ...) with a human detail.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from frameworks.service.appdef import App
from frameworks.service.constraints import Placement, unmet
from frameworks.service.queue import OfferResult
from mesostw.model.resources import UNRESERVED, Resources, normalize_ranges, to_millis
from mesostw.model.task import Offer


@attrs.frozen
class Candidate:
    """An app waiting for ``count`` launches, with where its live instances run."""

    app: App
    count: int
    placed: tuple[Placement, ...] = ()


@attrs.frozen
class Launch:
    app: App
    resources: Resources
    host_ports: tuple[int, ...]


@attrs.frozen
class Match:
    launches: tuple[Launch, ...]
    results: tuple[tuple[str, OfferResult], ...]  # (app id, what the offer did for it)


def accepted_roles(app: App, framework_role: str) -> set[str]:
    return set(app.accepted_roles or (UNRESERVED, framework_role))


def _take_scalar(pool: Resources, name: str, amount: float, roles: set[str]) -> Resources | None:
    """``amount`` of scalar ``name`` out of ``pool`` (reserved roles first), or None if short."""
    need = to_millis(amount)
    if need <= 0:
        return Resources()
    taken: dict[tuple[str, str], int] = {}
    for role in sorted(roles, key=lambda r: (r == UNRESERVED, r)):
        have = pool.get(name, role)
        if not isinstance(have, int) or have <= 0:
            continue
        part = min(have, need)
        taken[(name, role)] = part
        need -= part
        if need == 0:
            return Resources(taken)
    return None


def _take_ports(pool: Resources, wanted: Sequence[int], count: int, roles: set[str],
                exact: bool) -> Resources | None:
    """``count`` host ports (the ``wanted`` ones when ``exact``) out of ``pool``, or None."""
    if count == 0:
        return Resources()
    taken: dict[tuple[str, str], list[tuple[int, int]]] = {}
    chosen: list[int] = []
    for role in sorted(roles, key=lambda r: (r == UNRESERVED, r)):
        ranges = pool.get("ports", role)
        if not isinstance(ranges, tuple):
            continue
        if exact:
            for port in wanted:
                if port in chosen:
                    continue
                if any(b <= port <= e for b, e in ranges):
                    chosen.append(port)
                    taken.setdefault(("ports", role), []).append((port, port))
        else:
            for begin, end in ranges:
                port = begin
                while port <= end and len(chosen) < count:
                    chosen.append(port)
                    taken.setdefault(("ports", role), []).append((port, port))
                    port += 1
                if len(chosen) == count:
                    break
        if len(chosen) == count:
            break
    if len(chosen) < count:
        return None
    return Resources({key: normalize_ranges(value) for key, value in taken.items()})


def ports_in_order(resources: Resources, wanted: Sequence[int], exact: bool) -> tuple[int, ...]:
    """The host ports of a launch in the app's port order."""
    if exact:
        return tuple(wanted)
    out: list[int] = []
    for begin, end in resources.ranges("ports"):
        out.extend(range(begin, end + 1))
    return tuple(out)


def fit(app: App, pool: Resources, framework_role: str) -> tuple[Resources | None, str | None, str | None]:
    """(resources to take, None, None) if one instance of ``app`` fits in ``pool``, else
    (None, reason, detail)."""
    roles = accepted_roles(app, framework_role)
    # Unreserved and statically reserved resources only: dynamic reservations and volumes are not the app's.
    usable = pool.filter(lambda key: len(key) == 2 and key[1] in roles)
    if not usable:
        return None, "UnfulfilledRole", f"no resources in roles {', '.join(sorted(roles))}"
    spec = app.spec
    total = Resources()
    for name, reason in (("cpus", "InsufficientCpus"), ("mem", "InsufficientMemory"), ("disk", "InsufficientDisk"),
                         ("gpus", "InsufficientGpus")):
        amount = float(spec.get(name) or 0)
        part = _take_scalar(usable, name, amount, roles)
        if part is None:
            return None, reason, f"{name} {amount:g} wanted, {usable.scalar(name):g} offered"
        total = total + part
    definitions = app.port_definitions
    wanted = app.service_ports
    ports = _take_ports(usable, wanted, len(definitions), roles, app.require_ports)
    if ports is None:
        detail = (f"ports {', '.join(map(str, wanted))} required" if app.require_ports
                  else f"{len(definitions)} ports wanted")
        return None, "InsufficientPorts", detail
    return total + ports, None, None


def match_offer(offer: Offer, candidates: Sequence[Candidate], framework_role: str, limit: int,
                now: float) -> Match:
    """Place instances of ``candidates`` (in order) on ``offer``, at most ``limit`` in all."""
    pool = offer.resources
    launches: list[Launch] = []
    results: list[tuple[str, OfferResult]] = []
    for candidate in candidates:
        app = candidate.app
        placed = list(candidate.placed)
        got = 0
        reason: str | None = None
        detail: str | None = None
        while got < candidate.count and len(launches) < limit:
            broken = unmet(app.constraints, offer.hostname, offer.attributes, placed)
            if broken is not None:
                reason, detail = "UnfulfilledConstraint", f"constraint {broken} not met on {offer.hostname}"
                break
            taken, reason, detail = fit(app, pool, framework_role)
            if taken is None:
                break
            pool = pool - taken
            ports = ports_in_order(taken, app.service_ports, app.require_ports)
            launches.append(Launch(app, taken, ports))
            placed.append(Placement(offer.hostname, offer.attributes))
            got += 1
        if got:
            results.append((app.id, OfferResult(offer.id, offer.agent_id, offer.hostname, now, True)))
        elif reason is not None:
            results.append((app.id, OfferResult(offer.id, offer.agent_id, offer.hostname, now, False,
                                                (reason,), detail)))
        if len(launches) >= limit:
            break
    return Match(tuple(launches), tuple(results))

