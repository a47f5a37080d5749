"""Tests for reservation stacks, persistent volumes and offer operations in the resource model
(:mod:`mesostw.model.reservation`, :mod:`mesostw.model.resources`, :mod:`mesostw.model.operations`)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mesostw.model.operations import (
    CREATE,
    DESTROY,
    RESERVE,
    UNRESERVE,
    Incompatible,
    ResourceOperation,
    apply_checkpointed,
    split_total,
)
from mesostw.model.reservation import (
    DYNAMIC,
    STATIC,
    DiskInfo,
    Reservation,
    ancestors,
    container_path_problem,
    describe,
    is_allocatable_to,
    is_strict_subrole,
    make_key,
    popped,
    pushed,
    reservations_of,
    validate_role,
)
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.validation import ValidationError

SETTINGS = settings(max_examples=150, deadline=None)

#: role paths, each refinable into the next
CHAINS = [("eng", "eng/web", "eng/web/db"), ("ads",), ("a.b", "a.b/c")]
PRINCIPALS = [None, "ops", "dev"]
LABELS = [(), (("team", "web"),), (("flag", None), ("k", "v"))]
SCALARS = ("cpus", "mem", "disk", "gpus")

principals = st.sampled_from(PRINCIPALS)
labels = st.sampled_from(LABELS)
amounts = st.integers(min_value=1, max_value=10**9)


@st.composite
def stacks(draw: Any) -> tuple[Reservation, ...]:
    """A valid reservation stack: nothing, or an optional static base then dynamic refinements down a chain."""
    if draw(st.booleans()):
        return ()
    chain = draw(st.sampled_from(CHAINS))
    depth = draw(st.integers(1, len(chain)))
    static = draw(st.booleans())
    stack = []
    for index, role in enumerate(chain[:depth]):
        kind = STATIC if index == 0 and static else DYNAMIC
        stack.append(Reservation(kind, role) if kind == STATIC else Reservation(kind, role, draw(principals),
                                                                                 draw(labels)))
    return tuple(stack)


@st.composite
def entries(draw: Any) -> tuple[tuple, Any]:
    """One (key, value): a scalar with any stack, a persistent volume on reserved disk, ports or a set."""
    kind = draw(st.sampled_from(["scalar", "scalar", "volume", "ports", "set"]))
    stack = draw(stacks())
    if kind == "volume" and stack:
        disk = DiskInfo(draw(st.sampled_from(["v1", "v2", "db"])), draw(principals),
                        draw(st.sampled_from(["data", "a/b"])), "RW")
        return make_key("disk", stack, disk), draw(amounts)
    if kind == "ports":
        begin = draw(st.integers(0, 1000))
        return make_key("ports", stack), ((begin, begin + draw(st.integers(0, 50))),)
    if kind == "set":
        return make_key("bugs", stack), frozenset(draw(st.sets(st.sampled_from("abc"), min_size=1)))
    return make_key(draw(st.sampled_from(SCALARS)), stack), draw(amounts)


def bags(max_size: int = 6) -> st.SearchStrategy[Resources]:
    return st.lists(entries(), max_size=max_size, unique_by=lambda e: e[0]).map(lambda pairs: Resources(dict(pairs)))


def scalar_bags() -> st.SearchStrategy[Resources]:
    return bags().map(lambda r: r.filter(lambda k: k[0] in SCALARS))


class KeyTests(unittest.TestCase):
    """Keys are canonical: short for unreserved and plain static resources, long for the rest."""

    def test_short_and_long_keys(self) -> None:
        """Unreserved and single static reservations keep (name, role); dynamic, refined and volumes add meta."""
        self.assertEqual(make_key("cpus", ()), ("cpus", "*"))
        self.assertEqual(make_key("cpus", (Reservation(STATIC, "eng"),)), ("cpus", "eng"))
        dynamic = make_key("cpus", (Reservation(DYNAMIC, "eng", "ops"),))
        self.assertEqual((len(dynamic), dynamic[1]), (3, "eng"))
        self.assertEqual(dynamic, make_key("cpus", (Reservation(DYNAMIC, "eng", "ops"),)))
        self.assertEqual(hash(dynamic), hash(make_key("cpus", (Reservation(DYNAMIC, "eng", "ops"),))))
        self.assertNotEqual(dynamic, make_key("cpus", (Reservation(DYNAMIC, "eng", "dev"),)))
        self.assertNotEqual(dynamic, make_key("cpus", (Reservation(DYNAMIC, "eng", "ops", (("k", None),)),)))

    @SETTINGS
    @given(entries(), st.sampled_from(PRINCIPALS))
    def test_push_then_pop(self, entry: tuple, principal: str | None) -> None:
        """Pushing a reservation and popping it gives the key back; the role follows the top reservation."""
        key, _ = entry
        role = (key[1] + "/x") if key[1] != "*" else "x"
        top = pushed(key, Reservation(DYNAMIC, role, principal))
        self.assertEqual(top[1], role)
        self.assertEqual(reservations_of(top)[-1], Reservation(DYNAMIC, role, principal))
        self.assertEqual(popped(top), key)

    def test_describe(self) -> None:
        """Keys print as Mesos prints resources."""
        self.assertEqual(describe(("cpus", "eng")), "cpus(eng)")
        volume = make_key("disk", (Reservation(STATIC, "eng"), Reservation(DYNAMIC, "eng/web", "ops", (("k", "v"),))),
                          DiskInfo("vol1", "ops", "data", "RW"))
        self.assertEqual(describe(volume), "disk(reservations: [(STATIC,eng),(DYNAMIC,eng/web,ops,{k: v})])[vol1:data]")


class RoleTests(unittest.TestCase):
    """Hierarchical role names and what each role may be offered."""

    def test_validate(self) -> None:
        """'/' separates components; each is a valid role name of its own, never '.', '..', '*' or '-x'."""
        for good in ("*", "eng", "eng/web", "eng/web/db", "a.b", "team_x", "x-1"):
            self.assertIsNone(validate_role(good), good)
        for bad in ("", "/eng", "eng/", "eng//web", "eng/./web", "eng/..", "eng/*", "-eng", "eng/-web", "a b",
                    "a\tb", "a\\b", "a\x7fb", "x" * 256):
            self.assertIsNotNone(validate_role(bad), bad)

    def test_sub_roles(self) -> None:
        """Sub-roles are below by whole components; reserved resources go to the role and its sub-roles."""
        self.assertTrue(is_strict_subrole("eng/web", "eng"))
        self.assertTrue(is_strict_subrole("eng/web/db", "eng"))
        self.assertFalse(is_strict_subrole("engineering", "eng"))
        self.assertFalse(is_strict_subrole("eng", "eng"))
        self.assertTrue(is_allocatable_to("*", "anything"))
        self.assertTrue(is_allocatable_to("eng", "eng/web"))
        self.assertFalse(is_allocatable_to("eng/web", "eng"))
        self.assertEqual(ancestors("a/b/c"), ["a/b", "a"])

    @SETTINGS
    @given(bags(), st.sampled_from(["eng", "eng/web", "eng/web/db", "ads", "*", "engineering"]))
    def test_allocatable_to(self, r: Resources, role: str) -> None:
        """allocatable_to(role) keeps exactly the unreserved resources and those reserved for role or above it."""
        kept = r.allocatable_to(role)
        self.assertEqual(kept, r.filter(lambda k: k[1] == "*" or k[1] == role or role.startswith(k[1] + "/")))


class JSONTests(unittest.TestCase):
    """Resources in Mesos's v1 JSON, in either reservation format."""

    @SETTINGS
    @given(bags(), st.sampled_from([None, "eng"]))
    def test_round_trip(self, r: Resources, allocation_role: str | None) -> None:
        """from_json(to_json(r)) == r, through JSON text too, whatever the stacks, labels and volumes."""
        data = r.to_json(allocation_role)
        self.assertEqual(Resources.from_json(data), r)
        self.assertEqual(Resources.from_json(json.loads(json.dumps(data))), r)

    @SETTINGS
    @given(bags())
    def test_endpoint_format(self, r: Resources) -> None:
        """Every resource lists its reservations; role (and reservation for a dynamic one) are there too
        when there is at most one reservation, never for refined ones."""
        for key, value in r.entries():
            [resource] = Resources({key: value}).to_json()
            stack = reservations_of(key)
            self.assertEqual([Reservation(x["type"], x["role"], x.get("principal")) for x in
                              resource.get("reservations", [])], [s._replace(labels=()) for s in stack])
            if len(stack) > 1:
                self.assertNotIn("role", resource)
            else:
                self.assertEqual(resource["role"], key[1])
                self.assertEqual("reservation" in resource, bool(stack) and stack[0].type == DYNAMIC)

    def test_pre_refinement_format(self) -> None:
        """role + reservation is a dynamic reservation, role alone a static one (Mesos's upgrade)."""
        dynamic = Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "eng",
                                        "reservation": {"principal": "ops",
                                                        "labels": {"labels": [{"key": "k", "value": "v"}]}}}])
        self.assertEqual(list(dynamic.keys()), [make_key("cpus", (Reservation(DYNAMIC, "eng", "ops", (("k", "v"),)),))])
        static = Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "eng"}])
        self.assertEqual(static, Resources.parse("cpus(eng):1"))

    def test_volume_json(self) -> None:
        """A persistent volume's DiskInfo reads and writes as Mesos's."""
        data = [{"name": "disk", "type": "SCALAR", "scalar": {"value": 64.0}, "role": "eng",
                 "reservation": {"principal": "ops"},
                 "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "ops"}],
                 "disk": {"persistence": {"id": "vol1", "principal": "ops"},
                          "volume": {"container_path": "data", "mode": "RW"}}}]
        self.assertEqual(Resources.from_json(data).to_json(), data)

    def test_errors(self) -> None:
        """Bad stacks and DiskInfos are refused with what is wrong, each resource with its index."""
        cases = [
            ({"reservations": [{"type": "STATIC", "role": "a"}, {"type": "STATIC", "role": "a/b"}]},
             "a refined reservation cannot be STATIC"),
            ({"reservations": [{"type": "DYNAMIC", "role": "a"}, {"type": "DYNAMIC", "role": "b"}]},
             "role 'b' is not a refinement of 'a'"),
            ({"reservations": [{"type": "DYNAMIC", "role": "*"}]}, '"*" means unreserved'),
            ({"reservations": [{"role": "a"}]}, "type is required"),
            ({"role": "*", "reservation": {"principal": "p"}}, '"*" cannot be dynamically reserved'),
            ({"role": "b", "reservations": [{"type": "DYNAMIC", "role": "a"}]}, "role does not match"),
            ({"reservation": {"principal": "p", "role": "a"}, "role": "a"}, "must not set type or role"),
            ({"name": "cpus", "disk": {"persistence": {"id": "v"}, "volume": {"container_path": "d", "mode": "RW"}}},
             "is only for disk resources"),
            ({"disk": {"persistence": {"id": "a/b"}, "volume": {"container_path": "d", "mode": "RW"}}},
             "persistence.id must not contain"),
            ({"disk": {"volume": {"container_path": "d", "mode": "RW"}}}, "not supported without a persistence"),
            ({"disk": {"source": {"type": "MOUNT"}}}, "source is not supported"),
            ({"disk": {"persistence": {"id": "v"}, "volume": {"container_path": "d", "mode": "RW",
                                                              "host_path": "/x"}}}, "host_path must not be set"),
            ({"shared": {}}, "shared is not supported"),
        ]
        for extra, message in cases:
            resource = {"name": "disk", "type": "SCALAR", "scalar": {"value": 1}, **extra}
            with self.assertRaises(ValidationError) as caught:
                Resources.from_json([resource])
            self.assertTrue(any(message in e for e in caught.exception.errors), (extra, caught.exception.errors))

    def test_a_volume_given_twice(self) -> None:
        """A list that names the same persistent volume twice is refused (they never add up)."""
        volume = {"name": "disk", "type": "SCALAR", "scalar": {"value": 1}, "role": "eng",
                  "disk": {"persistence": {"id": "v"}, "volume": {"container_path": "d", "mode": "RW"}}}
        with self.assertRaises(ValidationError) as caught:
            Resources.from_json([volume, volume])
        self.assertIn("gives persistent volume 'v' twice", str(caught.exception))


class ArithmeticTests(unittest.TestCase):
    """Resources with different reservations or volumes never mix."""

    @SETTINGS
    @given(scalar_bags(), scalar_bags(), scalar_bags())
    def test_laws(self, a: Resources, b: Resources, c: Resources) -> None:
        """+ commutes and associates, (a + b) - b == a, and contains agrees with subtraction."""
        self.assertEqual(a + b, b + a)
        self.assertEqual((a + b) + c, a + (b + c))
        if not a.volumes() and not b.volumes():
            self.assertEqual((a + b) - b, a)
            self.assertEqual(b.contains(a), not (a - b))
        self.assertTrue((a + b).contains(b) or bool(a.volumes().keys() & b.volumes().keys()))

    @SETTINGS
    @given(bags())
    def test_views_partition(self, r: Resources) -> None:
        """unreserved + reserved == r; the reservations by role add up to reserved; flatten keeps totals."""
        self.assertEqual(r.unreserved() + r.reserved(), r)
        self.assertEqual(sum(r.reservations().values(), EMPTY), r.reserved())
        self.assertEqual(r.flatten().scalars(), r.scalars())
        self.assertEqual(r.static().scalars(), r.scalars())
        self.assertFalse(r.static().checkpointed())

    def test_reservations_do_not_mix(self) -> None:
        """Dynamic cpus of eng by ops do not satisfy unreserved cpus, static ones, or eng by dev."""
        ops = Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}, "role": "eng",
                                    "reservation": {"principal": "ops"}}])
        dev = Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "eng",
                                    "reservation": {"principal": "dev"}}])
        for other in (Resources.parse("cpus:1"), Resources.parse("cpus(eng):1"), dev):
            self.assertFalse(ops.contains(other), other)
        self.assertEqual((ops + dev).scalar("cpus"), 5.0)
        self.assertEqual(len(list((ops + dev).keys())), 2)

    def test_volumes_are_contained_whole(self) -> None:
        """Part of a volume is not in it; the whole is."""
        key = make_key("disk", (Reservation(DYNAMIC, "eng"),), DiskInfo("v", None, "data", "RW"))
        volume = Resources({key: 64_000})
        self.assertTrue(volume.contains(volume))
        self.assertFalse(volume.contains(Resources({key: 32_000})))
        self.assertFalse((volume + Resources.parse("cpus:1")).contains(Resources({key: 1_000})))


class OperationTests(unittest.TestCase):
    """RESERVE, UNRESERVE, CREATE and DESTROY as conversions, and agents' checkpointed resources."""

    def test_conversions(self) -> None:
        """Each operation consumes what its inverse gives back."""
        reserved = Resources.from_json([{"name": "disk", "type": "SCALAR", "scalar": {"value": 64}, "role": "eng",
                                         "reservation": {"principal": "ops"}}])
        volume = Resources.from_json([{**reserved.to_json()[0], "disk": {
            "persistence": {"id": "v"}, "volume": {"container_path": "data", "mode": "RW"}}}])
        plain = Resources.parse("disk:64")
        self.assertEqual(ResourceOperation(RESERVE, reserved).conversion(), (plain, reserved))
        self.assertEqual(ResourceOperation(UNRESERVE, reserved).conversion(), (reserved, plain))
        self.assertEqual(ResourceOperation(CREATE, volume).conversion(), (reserved, volume))
        self.assertEqual(ResourceOperation(DESTROY, volume).conversion(), (volume, reserved))
        self.assertIsNone(ResourceOperation(CREATE, volume).apply(plain))

    @SETTINGS
    @given(st.lists(st.tuples(st.sampled_from(["cpus", "mem", "disk"]), st.integers(1, 1000)), min_size=1,
                    max_size=3, unique_by=lambda e: e[0]),
           st.sampled_from(CHAINS), principals, labels, st.booleans())
    def test_operations_undo(self, amounts_: list[tuple[str, int]], chain: tuple[str, ...], principal: str | None,
                             labels_: Any, volume: bool) -> None:
        """RESERVE then UNRESERVE, refining then unrefining, CREATE then DESTROY each restore the total; the
        checkpointed resources of every intermediate total, applied to its static part, give it back."""
        total = Resources.parse("cpus:2000;mem:2000;disk:2000")
        plain = Resources({(name, "*"): value * 1000 for name, value in amounts_})
        reserved = Resources({pushed(k, Reservation(DYNAMIC, chain[0], principal, labels_)): v
                              for k, v in plain.entries()})
        steps = [ResourceOperation(RESERVE, reserved)]
        top = reserved
        if len(chain) > 1:
            top = Resources({pushed(k, Reservation(DYNAMIC, chain[1], principal)): v for k, v in reserved.entries()})
            steps.append(ResourceOperation(RESERVE, top))
        disk = top.filter(lambda k: k[0] == "disk")
        if volume and disk:
            made = Resources({make_key("disk", reservations_of(k), DiskInfo("v", principal, "data", "RW")): v
                              for k, v in disk.entries()})
            steps.append(ResourceOperation(CREATE, made))
        inverse = {RESERVE: UNRESERVE, CREATE: DESTROY}
        current = total
        for step in steps:
            after = step.apply(current)
            assert after is not None
            static, checkpointed = split_total(after)
            self.assertEqual(static, total)
            self.assertEqual(apply_checkpointed(static, checkpointed), after)
            current = after
        for step in reversed(steps):
            after = ResourceOperation(inverse[step.type], step.resources).apply(current)
            assert after is not None
            current = after
        self.assertEqual(current, total)

    def test_incompatible_checkpoint(self) -> None:
        """Checkpointed resources that the --resources cannot hold, or that need no checkpoint, are refused."""
        reserved = Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}, "role": "eng",
                                         "reservation": {}}])
        self.assertRaises(Incompatible, apply_checkpointed, Resources.parse("cpus:2"), reserved)
        self.assertRaises(Incompatible, apply_checkpointed, Resources.parse("cpus(eng):4"), reserved)
        self.assertRaises(Incompatible, apply_checkpointed, Resources.parse("cpus:4"), Resources.parse("cpus(eng):1"))
        self.assertEqual(apply_checkpointed(Resources.parse("cpus:4"), reserved), reserved)

    def test_container_paths(self) -> None:
        """Volumes appear at relative paths inside the sandbox only."""
        for good in ("data", "a/b", "x.y"):
            self.assertIsNone(container_path_problem(good))
        for bad in ("", "/abs", "../up", "a/../b", "a//b", "./a"):
            self.assertIsNotNone(container_path_problem(bad), bad)
