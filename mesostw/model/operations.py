"""Offer operations that change what an agent's resources are: RESERVE, UNRESERVE, CREATE, DESTROY.

Each turns some resources (*consumed*) into others of the same quantity (*converted*), as Mesos's
``getResourceConversions``: RESERVE pushes a reservation (it consumes the resources one reservation
down), UNRESERVE pops one, CREATE gives reserved disk a persistence ID and a container path, DESTROY
takes them back. Applying an operation to a bag of resources needs the consumed ones in it.

What agents checkpoint and the registry keeps are an agent's *checkpointed* resources (dynamic
reservations and persistent volumes); its total is its ``--resources`` with those applied
(:func:`apply_checkpointed`). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import attrs

from mesostw.model.reservation import (
    needs_checkpointing,
    popped,
    static_of,
    without_volume,
)
from mesostw.model.resources import EMPTY, Resources

RESERVE, UNRESERVE, CREATE, DESTROY = "RESERVE", "UNRESERVE", "CREATE", "DESTROY"
TYPES = (RESERVE, UNRESERVE, CREATE, DESTROY)
#: operation type -> (the Offer.Operation field holding its message, that message's resources field)
FIELDS = {RESERVE: ("reserve", "resources"), UNRESERVE: ("unreserve", "resources"),
          CREATE: ("create", "volumes"), DESTROY: ("destroy", "volumes")}


class Incompatible(ValueError):
    """Checkpointed resources that an agent's ``--resources`` cannot hold."""


@attrs.frozen
class ResourceOperation:
    """One RESERVE, UNRESERVE, CREATE or DESTROY with its resources (volumes for CREATE and DESTROY)."""

    type: str
    resources: Resources

    def conversion(self) -> tuple[Resources, Resources]:
        """(consumed, converted): what the operation takes from the agent and what it gives back."""
        consumed = converted = EMPTY
        for key, value in self.resources.entries():
            if self.type == RESERVE:
                source, target = popped(key), key
            elif self.type == UNRESERVE:
                source, target = key, popped(key)
            elif self.type == CREATE:
                source, target = without_volume(key), key
            else:
                source, target = key, without_volume(key)
            consumed = consumed + Resources({source: value})
            converted = converted + Resources({target: value})
        return consumed, converted

    def apply(self, resources: Resources) -> Resources | None:
        """``resources`` after the operation, or None when they do not hold what it consumes."""
        consumed, converted = self.conversion()
        if not resources.contains(consumed):
            return None
        return resources - consumed + converted

    def to_json(self) -> dict[str, Any]:
        field, key = FIELDS[self.type]
        return {"type": self.type, field: {key: self.resources.to_json()}}


def apply_checkpointed(static: Resources, checkpointed: Resources) -> Resources:
    """An agent's total: its ``--resources`` (``static``) with its checkpointed resources in place of
    the ones they were made from (Mesos's ``applyCheckpointedResources``); raises :class:`Incompatible`
    when ``static`` does not hold them."""
    total = static
    for key, value in checkpointed.entries():
        if not needs_checkpointing(key):
            raise Incompatible(f"{Resources({key: value})} is neither dynamically reserved nor a persistent volume")
        made_from = Resources({static_of(key): value})
        if not total.contains(made_from):
            raise Incompatible(f"checkpointed {Resources({key: value})} does not fit in the agent's resources "
                               f"({static})")
        total = total - made_from + Resources({key: value})
    return total


def split_total(total: Resources) -> tuple[Resources, Resources]:
    """(static, checkpointed) of an agent's total: the ``--resources`` it was made from, and the dynamic
    reservations and volumes on top of them; :func:`apply_checkpointed` of the two gives ``total`` back."""
    checkpointed = total.checkpointed()
    if not checkpointed:
        return total, EMPTY
    return total.static(), checkpointed
