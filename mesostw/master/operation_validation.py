"""Checks on RESERVE, UNRESERVE, CREATE and DESTROY before they touch an agent (``mesos:src/master/validation.cpp``).

Each function answers why the operation is invalid, or None. ``principal`` is who asks: a framework's
principal (its FrameworkInfo's) or an operator's (HTTP authentication), None when there is none; an
operation from a framework also passes its FrameworkInfo and the role its offers are allocated to.
Pure: availability (is it in the offer? is it free?) and the ACLs are checked by the caller.
"""

from __future__ import annotations

from mesostw.model.info import FrameworkInfo
from mesostw.model.reservation import (
    RO,
    container_path_problem,
    describe,
    disk_of,
    is_dynamic,
    is_refined,
    is_volume,
    reservations_of,
)
from mesostw.model.resources import Resources

REFINEMENT = "RESERVATION_REFINEMENT"


def _refinement_refused(resources: Resources, framework: FrameworkInfo | None) -> str | None:
    if framework is None or REFINEMENT in framework.capabilities:
        return None
    for key in resources.keys():
        if is_refined(key):
            return (f"Resource {describe(key)} has refined reservations, which need the framework's "
                    f"{REFINEMENT} capability")
    return None


def validate_reserve(resources: Resources, principal: str | None, framework: FrameworkInfo | None = None,
                     allocation_role: str | None = None) -> str | None:
    """Every resource gets one more dynamic reservation, by ``principal`` when there is one; a framework
    reserves only for the role its offer is allocated to."""
    if not resources:
        return "There are no resources to reserve"
    for key, value in resources.entries():
        shown = Resources({key: value})
        if not is_dynamic(key):
            return f"Resource {shown} is not dynamically reserved"
        top = reservations_of(key)[-1]
        if principal is not None:
            if top.principal is None:
                return (f"A reserve operation was attempted by principal '{principal}', but there is a reserved "
                        f"resource in the request with no principal set")
            if top.principal != principal:
                return (f"A reserve operation was attempted by principal '{principal}', which does not match a "
                        f"reserved resource in the request with principal '{top.principal}'")
        if framework is not None:
            role = allocation_role if allocation_role is not None else framework.allocation_role
            if top.role != role:
                return (f"A reserve operation was attempted for a resource with role '{top.role}', but the "
                        f"resource was allocated to role '{role}'")
    return _refinement_refused(resources, framework)


def validate_unreserve(resources: Resources) -> str | None:
    """Only dynamic reservations are undone, and never under a persistent volume."""
    if not resources:
        return "There are no resources to unreserve"
    for key, value in resources.entries():
        shown = Resources({key: value})
        if not is_dynamic(key):
            return f"Resource {shown} is not dynamically reserved"
        if is_volume(key):
            return (f"A dynamically reserved persistent volume {shown} cannot be unreserved directly. Please "
                    f"destroy the persistent volume first then unreserve the resource")
    return None


def _volume_problem(key: tuple, shown: Resources) -> str | None:
    disk = disk_of(key)
    if disk is None:
        return f"Resource {shown} does not have DiskInfo"
    if not disk.persistent:
        return "'persistence' is not set in DiskInfo"
    if disk.container_path is None:
        return "Expecting 'volume' to be set for persistent volume"
    if disk.mode == RO:
        return "Read-only persistent volume not supported"
    return None


def validate_create(volumes: Resources, checkpointed: Resources, principal: str | None,
                    framework: FrameworkInfo | None = None) -> str | None:
    """Persistent volumes on reserved disk, with IDs unique per role on the agent, by ``principal``."""
    if not volumes:
        return "There are no volumes to create"
    seen = {(k[1], k[2].disk.persistence_id) for k in checkpointed.volumes().keys()}
    for key, value in volumes.entries():
        shown = Resources({key: value})
        problem = _volume_problem(key, shown)
        if problem:
            return f"Not a persistent volume: {problem}"
        disk = disk_of(key)
        assert disk is not None and disk.persistence_id is not None and disk.container_path is not None
        if not reservations_of(key):
            return "Persistent volumes cannot be created from unreserved resources"
        problem = container_path_problem(disk.container_path)
        if problem:
            return f"Invalid volume {disk.persistence_id}: {problem}"
        if (key[1], disk.persistence_id) in seen:
            return f"Persistence ID '{disk.persistence_id}' is not unique"
        seen.add((key[1], disk.persistence_id))
        if principal is not None:
            if disk.principal is None:
                return (f"Create volume operation attempted by principal '{principal}', but there is a volume in "
                        f"the operation with no principal set in 'disk.persistence'")
            if disk.principal != principal:
                return (f"Create volume operation attempted by principal '{principal}', which does not match a "
                        f"volume in the operation with principal '{disk.principal}' set in 'disk.persistence'")
    return _refinement_refused(volumes, framework)


def validate_destroy(volumes: Resources, checkpointed: Resources, used: Resources) -> str | None:
    """Volumes the agent has, that no task or executor uses."""
    if not volumes:
        return "There are no volumes to destroy"
    for key, value in volumes.entries():
        shown = Resources({key: value})
        problem = _volume_problem(key, shown)
        if problem:
            return f"Not a persistent volume: {problem}"
    if not checkpointed.contains(volumes):
        return "Persistent volumes not found"
    for key, value in volumes.entries():
        if used.contains(Resources({key: value})):
            return "Persistent volumes in use"
    return None
