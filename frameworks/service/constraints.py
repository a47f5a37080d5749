"""Placement constraints: ``[field, OPERATOR(, value)]`` on the hostname or an agent attribute.

Pure functions. :func:`parse` checks one constraint as a client sent it; :func:`unmet`
says which constraint (if any) an agent fails, given where the app's other instances
already are. Semantics follow Marathon's ``Constraints.scala``: an agent without the
field satisfies only UNLIKE; scalar attributes compare after rounding to 3 decimals.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

UNIQUE, CLUSTER, GROUP_BY, IS = "UNIQUE", "CLUSTER", "GROUP_BY", "IS"
LIKE, UNLIKE, MAX_PER = "LIKE", "UNLIKE", "MAX_PER"
OPERATORS = (UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS)
HOSTNAME_FIELDS = ("hostname", "@hostname")


@attrs.frozen
class Constraint:
    field: str
    operator: str
    value: str | None = None
    pattern: re.Pattern[str] | None = attrs.field(default=None, eq=False, repr=False)

    def to_json(self) -> list[str]:
        return [self.field, self.operator] if self.value is None else [self.field, self.operator, self.value]

    def __str__(self) -> str:
        return ":".join(self.to_json())


def parse(raw: Any) -> Constraint:
    """A constraint from its JSON form (a list of 2 or 3 strings); ValueError says what is wrong."""
    if not isinstance(raw, (list, tuple)) or len(raw) not in (2, 3):
        raise ValueError("Each constraint must have either 2 or 3 fields")
    if not all(isinstance(part, str) for part in raw):
        raise ValueError("Constraint fields must be strings")
    field, operator = raw[0], raw[1].upper()
    value = raw[2] if len(raw) == 3 else None
    if not field:
        raise ValueError("Constraint field must not be empty")
    if operator not in OPERATORS:
        raise ValueError(f"Constraint operator must be one of {', '.join(OPERATORS)}")
    pattern = None
    if operator == UNIQUE and value is not None:
        raise ValueError("Value specified but not used")
    if operator in (LIKE, UNLIKE, IS):
        if value is None:
            raise ValueError(f"A regular expression value must be provided for {operator}" if operator != IS
                             else "A value must be provided for IS")
        if operator != IS:
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise ValueError(f"'{value}' is not a valid regular expression ({exc})") from None
    if operator == MAX_PER:
        if value is None or not _is_int(value) or int(value) < 1:
            raise ValueError("Value was not a valid positive integer")
    if operator == GROUP_BY and value is not None and (not _is_int(value) or int(value) < 0):
        raise ValueError("Value was not a valid integer")
    return Constraint(field, operator, value, pattern)


def _is_int(text: str) -> bool:
    return text.strip().isdigit()


def agent_value(field: str, hostname: str, attributes: Mapping[str, Any]) -> str | None:
    """The text a constraint on ``field`` compares for an agent, or None when it has none."""
    if field in HOSTNAME_FIELDS:
        return hostname
    name = field[1:] if field in ("@region", "@zone") else field
    if name not in attributes:
        return None
    return render(attributes[name])


def render(value: Any) -> str:
    """An attribute value as text: scalars to 3 decimals without trailing zeros, ranges, sets."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        text = f"{round(float(value), 3):.3f}".rstrip("0").rstrip(".")
        return text or "0"
    if isinstance(value, tuple):
        return "[" + ",".join(f"{b}-{e}" for b, e in value) + "]"
    if isinstance(value, frozenset):
        return "{" + ",".join(sorted(value)) + "}"
    return str(value)


def _equal(left: str, right: str) -> bool:
    if left == right:
        return True
    try:
        return round(float(left), 3) == round(float(right), 3)
    except ValueError:
        return False


def satisfied(constraint: Constraint, value: str | None, placed: Sequence[str | None]) -> bool:
    """Whether an agent whose field reads ``value`` may take one more instance, given the field's
    values on the agents of the instances already ``placed``."""
    op = constraint.operator
    if value is None:
        return op == UNLIKE
    if op == UNIQUE:
        return all(other is None or not _equal(other, value) for other in placed)
    if op == CLUSTER:
        if constraint.value is not None:
            return _equal(value, constraint.value)
        known = [other for other in placed if other is not None]
        return not known or all(_equal(other, value) for other in known)
    if op == IS:
        return constraint.value is not None and _equal(value, constraint.value)
    if op == LIKE:
        return constraint.pattern is not None and constraint.pattern.fullmatch(value) is not None
    if op == UNLIKE:
        return constraint.pattern is None or constraint.pattern.fullmatch(value) is None
    if op == MAX_PER:
        limit = int(constraint.value or "0")
        return sum(1 for other in placed if other is not None and _equal(other, value)) < limit
    if op == GROUP_BY:
        minimum = int(constraint.value) if constraint.value else 0
        groups = Counter(_key(other) for other in placed if other is not None)
        mine = groups.get(_key(value))
        if mine is None:
            return True
        return len(groups) >= minimum and mine == min(groups.values())
    return False


def _key(value: str) -> str:
    try:
        return render(float(value))
    except ValueError:
        return value


@attrs.frozen
class Placement:
    """Where one instance runs, as constraints see it."""

    hostname: str
    attributes: Mapping[str, Any] = attrs.field(factory=dict)


def unmet(constraints: Iterable[Constraint], hostname: str, attributes: Mapping[str, Any],
          placed: Sequence[Placement]) -> Constraint | None:
    """The first constraint an agent (``hostname``, ``attributes``) fails, or None if it may take
    another instance of an app whose other instances are ``placed``."""
    for constraint in constraints:
        value = agent_value(constraint.field, hostname, attributes)
        others = [agent_value(constraint.field, p.hostname, p.attributes) for p in placed]
        if not satisfied(constraint, value, others):
            return constraint
    return None
