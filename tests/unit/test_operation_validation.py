"""Tests for :mod:`mesostw.master.operation_validation`: every combination of who asks, what they ask
for and for which role, against Mesos's rules (``src/master/validation.cpp``) stated independently here."""

from __future__ import annotations

import itertools

from twisted.trial import unittest

from mesostw.master.operation_validation import (
    validate_create,
    validate_destroy,
    validate_reserve,
    validate_unreserve,
)
from mesostw.model.info import FrameworkInfo
from mesostw.model.reservation import DYNAMIC, RO, RW, STATIC, DiskInfo, Reservation, make_key
from mesostw.model.resources import EMPTY, Resources

PRINCIPALS = (None, "ops", "dev")
#: stacks a requested resource may carry
STACKS = {
    "unreserved": (),
    "static eng": (Reservation(STATIC, "eng"),),
    "dynamic eng": (Reservation(DYNAMIC, "eng", "ops"),),
    "dynamic eng, no principal": (Reservation(DYNAMIC, "eng"),),
    "dynamic eng by dev": (Reservation(DYNAMIC, "eng", "dev"),),
    "dynamic ads": (Reservation(DYNAMIC, "ads", "ops"),),
    "refined eng/web": (Reservation(STATIC, "eng"), Reservation(DYNAMIC, "eng/web", "ops")),
}
FRAMEWORKS = {
    "none (operator)": None,
    "eng": FrameworkInfo("u", "f", role="eng"),
    "eng/web": FrameworkInfo("u", "f", role="eng/web"),
    "eng/web refining": FrameworkInfo("u", "f", role="eng/web", capabilities=frozenset({"RESERVATION_REFINEMENT"})),
    "ads": FrameworkInfo("u", "f", role="ads"),
}


def one(stack: tuple[Reservation, ...], name: str = "cpus", disk: DiskInfo | None = None) -> Resources:
    return Resources({make_key(name, stack, disk): 1000})


class ReserveTests(unittest.TestCase):
    def test_every_combination(self) -> None:
        """A reservation is valid iff its top is dynamic, its principal is the requester's (any, when the
        requester has none), a framework reserves for its own role, and refined stacks come from
        frameworks with RESERVATION_REFINEMENT (or operators)."""
        for (stack_name, stack), principal, (framework_name, framework) in itertools.product(
                STACKS.items(), PRINCIPALS, FRAMEWORKS.items()):
            problem = validate_reserve(one(stack), principal, framework)
            top = stack[-1] if stack else None
            expected_ok = (
                top is not None and top.type == DYNAMIC
                and (principal is None or top.principal == principal)
                and (framework is None or top.role == framework.role)
                and (framework is None or len(stack) == 1 or "RESERVATION_REFINEMENT" in framework.capabilities))
            self.assertEqual(problem is None, expected_ok, (stack_name, principal, framework_name, problem))

    def test_messages(self) -> None:
        """The refusals say what is wrong, in Mesos's words."""
        self.assertIn("is not dynamically reserved", validate_reserve(one(()), None) or "")
        self.assertIn("with no principal set", validate_reserve(one(STACKS["dynamic eng, no principal"]), "ops") or "")
        self.assertIn("does not match a reserved resource in the request with principal 'dev'",
                      validate_reserve(one(STACKS["dynamic eng by dev"]), "ops") or "")
        self.assertIn("allocated to role 'ads'",
                      validate_reserve(one(STACKS["dynamic eng"]), None, FRAMEWORKS["ads"]) or "")
        self.assertIn("RESERVATION_REFINEMENT",
                      validate_reserve(one(STACKS["refined eng/web"]), None, FRAMEWORKS["eng/web"]) or "")
        self.assertIn("no resources", validate_reserve(EMPTY, None) or "")


class UnreserveTests(unittest.TestCase):
    def test_every_combination(self) -> None:
        """Only dynamic reservations are undone (whoever made them: the ACLs judge that), never one
        holding a persistent volume."""
        for (stack_name, stack), volume in itertools.product(STACKS.items(), (False, True)):
            disk = DiskInfo("v", None, "data", RW) if volume else None
            problem = validate_unreserve(one(stack, "disk", disk))
            expected_ok = bool(stack) and stack[-1].type == DYNAMIC and not volume
            self.assertEqual(problem is None, expected_ok, (stack_name, volume, problem))
        self.assertIn("destroy the persistent volume first",
                      validate_unreserve(one(STACKS["dynamic eng"], "disk", DiskInfo("v", None, "d", RW))) or "")


class CreateTests(unittest.TestCase):
    def test_every_combination(self) -> None:
        """A volume needs reserved disk, a persistence ID new for its role on the agent, a relative
        container path, RW mode, the requester's principal, and refinement rights for refined stacks."""
        existing = Resources({make_key("disk", STACKS["dynamic eng"], DiskInfo("taken", None, "x", RW)): 1000})
        ids, paths, modes = ("new", "taken"), ("data", "/abs", "../up"), (RW, RO)
        for (stack_name, stack), persistence_id, path, mode, creator, principal, (framework_name, framework) in (
                itertools.product(STACKS.items(), ids, paths, modes, PRINCIPALS, PRINCIPALS, FRAMEWORKS.items())):
            volume = one(stack, "disk", DiskInfo(persistence_id, creator, path, mode))
            problem = validate_create(volume, existing, principal, framework)
            expected_ok = (
                bool(stack) and mode == RW and path == "data"
                and not (persistence_id == "taken" and stack and stack[-1].role == "eng")
                and (principal is None or creator == principal)
                and (framework is None or len(stack) <= 1 or "RESERVATION_REFINEMENT" in framework.capabilities))
            self.assertEqual(problem is None, expected_ok,
                             (stack_name, persistence_id, path, mode, creator, principal, framework_name, problem))

    def test_not_a_volume_and_duplicates(self) -> None:
        """Plain disk is not a volume, and one CREATE may not make the same ID of a role twice."""
        self.assertIn("Not a persistent volume", validate_create(one(STACKS["dynamic eng"], "disk"), EMPTY, None) or "")
        stack = STACKS["dynamic eng"]
        twice = (Resources({make_key("disk", stack, DiskInfo("v", None, "a", RW)): 1000})
                 + Resources({make_key("disk", stack, DiskInfo("v", None, "b", RW)): 1000}))
        self.assertIn("Persistence ID 'v' is not unique", validate_create(twice, EMPTY, None) or "")
        other_role = Resources({make_key("disk", STACKS["dynamic ads"], DiskInfo("v", None, "a", RW)): 1000})
        self.assertIsNone(validate_create(other_role + Resources({make_key("disk", stack, DiskInfo(
            "v", None, "a", RW)): 1000}), EMPTY, None))


class DestroyTests(unittest.TestCase):
    def test_every_combination(self) -> None:
        """A volume is destroyed only when the agent has it and no task or executor uses it."""
        volume = one(STACKS["dynamic eng"], "disk", DiskInfo("v", None, "data", RW))
        for has, used in itertools.product((True, False), (True, False)):
            problem = validate_destroy(volume, volume if has else EMPTY, volume if used else EMPTY)
            self.assertEqual(problem is None, has and not used, (has, used, problem))
        self.assertEqual(validate_destroy(volume, EMPTY, EMPTY), "Persistent volumes not found")
        self.assertEqual(validate_destroy(volume, volume, volume), "Persistent volumes in use")
        plain_disk = one(STACKS["dynamic eng"], "disk")
        self.assertIn("Not a persistent volume", validate_destroy(plain_disk, EMPTY, EMPTY) or "")
