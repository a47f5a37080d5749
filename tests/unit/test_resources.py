"""Tests for :mod:`mesostw.model.resources`: parsing, arithmetic, JSON shapes and attributes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mesostw.model.attributes import attributes_from_json, attributes_model, attributes_to_json, parse_attributes
from mesostw.model.resources import (
    EMPTY,
    UNRESERVED,
    Resources,
    format_scalar,
    named_in,
    normalize_ranges,
    subtract_ranges,
)
from mesostw.model.validation import Reader, ValidationError

SETTINGS = settings(max_examples=100, deadline=None)

# Each name keeps one kind, as real resources do (mixing kinds under one name is an error).
SCALAR_NAMES = ("cpus", "mem", "disk", "gpus", "licenses")
RANGE_NAMES = ("ports", "vlans")
SET_NAMES = ("bugs", "zones")
ROLES = (UNRESERVED, "ads", "web", "prod-1", "a.b", "team_x")

scalars = st.integers(min_value=1, max_value=10**12)  # thousandths: up to 1e9 with three decimals
intervals = st.tuples(st.integers(0, 200), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1]))
range_values = st.lists(intervals, min_size=1, max_size=5).map(normalize_ranges)
set_values = st.frozensets(st.sampled_from("abcdefgh"), min_size=1, max_size=4)
roles = st.sampled_from(ROLES)


_scalar_entry = st.tuples(st.tuples(st.sampled_from(SCALAR_NAMES), roles), scalars)
_entry = st.one_of(
    _scalar_entry,
    st.tuples(st.tuples(st.sampled_from(RANGE_NAMES), roles), range_values),
    st.tuples(st.tuples(st.sampled_from(SET_NAMES), roles), set_values),
)


def resources(scalar_only: bool = False) -> st.SearchStrategy[Resources]:
    """Random :class:`Resources`: scalars with three decimals, ranges and sets, over several roles."""
    entries = st.lists(_scalar_entry if scalar_only else _entry, max_size=6, unique_by=lambda e: e[0])
    return entries.map(lambda pairs: Resources(dict(pairs)))


def non_scalar(r: Resources) -> Resources:
    """The ranges and sets of ``r`` (its scalars dropped)."""
    return Resources({(name, role): value for name, role, value in r if not isinstance(value, int)})


def points(ranges: tuple[tuple[int, int], ...]) -> set[int]:
    """Every integer an interval list covers."""
    return {p for begin, end in ranges for p in range(begin, end + 1)}


class ResourcePropertyTests(unittest.TestCase):
    """Algebraic properties that must hold for any resources."""

    @SETTINGS
    @given(resources(), resources(), resources())
    def test_addition_laws(self, a: Resources, b: Resources, c: Resources) -> None:
        """+ commutes and associates, a <= a + b, and (a + b) - b == a when a and b share no range or set item."""
        self.assertEqual(a + b, b + a)
        self.assertEqual((a + b) + c, a + (b + c))
        self.assertEqual(a + EMPTY, a)
        self.assertTrue(a <= a + b)
        self.assertTrue((a + b) >= b)
        disjoint = b - non_scalar(a)  # b's ranges and sets made disjoint from a's; its scalars untouched
        self.assertEqual((a + disjoint) - disjoint, a)

    @SETTINGS
    @given(resources(scalar_only=True), resources(scalar_only=True))
    def test_add_then_subtract_scalars(self, a: Resources, b: Resources) -> None:
        """For scalars alone (a + b) - b == a exactly, with no rounding drift."""
        self.assertEqual((a + b) - b, a)

    @SETTINGS
    @given(resources(), resources())
    def test_subtraction_laws(self, a: Resources, b: Resources) -> None:
        """b.contains(a) iff a - b is empty; (a+b) - a + a == a+b; a - b never holds a negative or empty amount."""
        self.assertEqual(b.contains(a), not (a - b))
        self.assertEqual(a.contains(b), not (b - a))
        whole = a + b
        self.assertEqual((whole - a) + a, whole)
        self.assertTrue(whole - a <= whole)
        self.assertEqual(a - a, EMPTY)
        for _name, _role, value in a - b:
            if isinstance(value, int):
                self.assertGreater(value, 0)
            else:
                self.assertTrue(value)

    @SETTINGS
    @given(resources(), st.sampled_from([None, "ads", "*"]))
    def test_round_trips(self, r: Resources, allocation_role: str | None) -> None:
        """from_json(to_json(r)) == r (also through JSON text) and parse(str(r)) == r."""
        data = r.to_json(allocation_role)
        self.assertEqual(Resources.from_json(data), r)
        self.assertEqual(Resources.parse(json.dumps(data)), r)
        self.assertEqual(Resources.parse(str(r)), r)
        self.assertEqual(hash(Resources.parse(str(r))), hash(r))

    @SETTINGS
    @given(resources())
    def test_views(self, r: Resources) -> None:
        """flatten() keeps scalar totals, unreserved() + reserved() == r, and model() is flat."""
        self.assertEqual(r.flatten().scalars(), r.scalars())
        self.assertEqual(r.flatten().roles() | {UNRESERVED}, {UNRESERVED})
        self.assertEqual(r.unreserved() + r.reserved(), r)
        self.assertTrue(r.allocatable_to("ads").roles() <= {UNRESERVED, "ads"})
        self.assertEqual(r.allocatable_to("ads"), r.unreserved() + r.reserved("ads"))
        model = r.model()
        for name in ("cpus", "gpus", "mem", "disk"):
            self.assertEqual(model[name], r.scalar(name))
        for name in RANGE_NAMES + SET_NAMES:
            self.assertEqual(name in model, name in r.names())
        json.dumps(model)

    @SETTINGS
    @given(scalars)
    def test_format_scalar_is_exact(self, millis: int) -> None:
        """A scalar's text form parses back to the same thousandths."""
        text = format_scalar(millis)
        self.assertEqual(round(float(text) * 1000), millis)
        self.assertNotIn("e", text)

    @SETTINGS
    @given(st.lists(intervals, max_size=8))
    def test_ranges_are_normalized(self, pairs: list[tuple[int, int]]) -> None:
        """Parsed ranges are sorted, merged (no overlap, no adjacency) and cover the same ports."""
        text = "ports:[" + ",".join(f"{b}-{e}" for b, e in pairs) + "]"
        got = Resources.parse(text).ranges("ports")
        self.assertEqual(points(got), points(tuple(pairs)))
        for (_, end), (begin, _) in zip(got, got[1:], strict=False):
            self.assertGreater(begin, end + 1)
        for begin, end in got:
            self.assertLessEqual(begin, end)

    @SETTINGS
    @given(range_values, range_values)
    def test_range_subtraction_is_set_difference(self, left: tuple, right: tuple) -> None:
        """subtract_ranges removes exactly the covered ports and keeps the result normalized."""
        got = subtract_ranges(left, right)
        self.assertEqual(points(got), points(left) - points(right))
        self.assertEqual(normalize_ranges(got), got)


class ResourceExampleTests(unittest.TestCase):
    """Concrete parsing, formatting and JSON examples."""

    def test_parse_the_mesos_syntax(self) -> None:
        """Scalars, ranges, sets and roles are parsed from --resources text."""
        r = Resources.parse("cpus:2;mem:1024;ports:[31000-32000];bugs(role):{a,b}")
        self.assertEqual(r.get("cpus"), 2000)
        self.assertEqual(r.get("mem"), 1024000)
        self.assertEqual(r.get("ports"), ((31000, 32000),))
        self.assertEqual(r.get("bugs", "role"), frozenset({"a", "b"}))
        self.assertEqual(r.get("bugs"), None)
        self.assertEqual(str(r), "cpus:2;mem:1024;ports:[31000-32000];bugs(role):{a,b}")

    def test_parse_tolerates_spaces_and_empty_parts(self) -> None:
        """Whitespace and stray semicolons are ignored."""
        r = Resources.parse(" cpus : 1.5 ; ; ports:[1-2, 5 - 6] ;")
        self.assertEqual(r, Resources.parse("cpus:1.5;ports:[1-2,5-6]"))

    def test_parse_default_role(self) -> None:
        """Parts without a role get default_role; explicit roles win."""
        r = Resources.parse("cpus:1;mem(web):64", default_role="ads")
        self.assertEqual(r.roles(), {"ads", "web"})

    def test_parse_repeated_names_add_up(self) -> None:
        """A name given twice with one type adds up, as in Mesos."""
        self.assertEqual(Resources.parse("cpus:1;cpus:2.5").scalar("cpus"), 3.5)
        self.assertEqual(Resources.parse("ports:[1-3];ports:[4-9]").get("ports"), ((1, 9),))

    def test_zero_amounts_are_dropped(self) -> None:
        """Zero scalars and empty range lists make no entry."""
        self.assertEqual(Resources.parse("cpus:0;ports:[];mem:1"), Resources.of(mem=1))
        self.assertFalse(Resources.parse(""))

    def test_three_decimal_fixed_point(self) -> None:
        """Scalars are exact in thousandths: 0.1 + 0.2 == 0.3 and 1234.567 prints back as written."""
        self.assertEqual(Resources.of(cpus=0.1) + Resources.of(cpus=0.2), Resources.of(cpus=0.3))
        self.assertEqual(str(Resources.parse("cpus:1234.567;mem:1234567.5")), "cpus:1234.567;mem:1234567.5")

    def test_bad_number(self) -> None:
        """A value that is no number, range list or set is named in the error."""
        with self.assertRaises(ValidationError) as caught:
            Resources.parse("cpus:two")
        self.assertEqual(caught.exception.errors,
                         ["bad resource 'cpus:two': 'two' is not a number, a range list or a set"])

    def test_negative_and_non_finite_scalars(self) -> None:
        """Negative, infinite and NaN scalars are refused with a reason."""
        for text, reason in [("cpus:-1", "must not be negative"), ("cpus:inf", "finite"),
                             ("cpus:nan", "finite"), ("mem:1e16", "too large")]:
            with self.assertRaises(ValidationError) as caught:
                Resources.parse(text)
            self.assertIn(reason, caught.exception.errors[0], text)
            self.assertIn(repr(text), caught.exception.errors[0])

    def test_reversed_range(self) -> None:
        """A range that ends before it begins is refused, naming the range."""
        with self.assertRaises(ValidationError) as caught:
            Resources.parse("ports:[32000-31000]")
        self.assertEqual(caught.exception.errors,
                         ["bad resource 'ports:[32000-31000]': range 32000-31000 ends before it begins"])

    def test_malformed_ranges_and_sets(self) -> None:
        """Unclosed brackets and non-numeric bounds are refused."""
        for text, reason in [("ports:[1-2", "ranges must look like"), ("ports:[a-b]", "bad range 'a-b'"),
                             ("ports:[5]", "bad range '5'"), ("bugs:{a,b", "sets must look like")]:
            with self.assertRaises(ValidationError) as caught:
                Resources.parse(text)
            self.assertIn(reason, caught.exception.errors[0], text)

    def test_bad_roles(self) -> None:
        """Roles with spaces, '.', '..', '*' or a leading '-' in a component, empty components or no name at
        all are refused; '/' separates the components of hierarchical roles."""
        for text in ["cpus(a b):1", "cpus(..):1", "cpus(.):1", "cpus(-x):1", "cpus():1", "cpus(/a):1",
                     "cpus(a/):1", "cpus(a//b):1", "cpus(a/./b):1", "cpus(a/*):1", "cpus(a/-b):1", "cpus(a\\b):1"]:
            with self.assertRaises(ValidationError) as caught:
                Resources.parse(text)
            self.assertEqual(len(caught.exception.errors), 1, text)
            self.assertIn(f"bad resource {text!r}", caught.exception.errors[0])
            self.assertIn("role", caught.exception.errors[0])

    def test_duplicate_types(self) -> None:
        """One name given as two different types is refused."""
        with self.assertRaises(ValidationError) as caught:
            Resources.parse("cpus:1;cpus:[1-2]")
        self.assertEqual(caught.exception.errors,
                         ["bad resource 'cpus:[1-2]': cpus given with two different types"])

    def test_unparseable_part(self) -> None:
        """A part without name:value is refused with the expected syntax."""
        with self.assertRaises(ValidationError) as caught:
            Resources.parse("cpus")
        self.assertIn("expected name[(role)]:value", str(caught.exception))

    def test_all_errors_reported_at_once(self) -> None:
        """Every bad part is reported, in order, not just the first."""
        text = "cpus:abc;mem:1;ports:[5-3];disk(/x):1;bugs:{a};bugs:[1-2];gpus:-1"
        with self.assertRaises(ValidationError) as caught:
            Resources.parse(text)
        errors = caught.exception.errors
        self.assertEqual(len(errors), 5, errors)
        for part, error in zip(["cpus:abc", "ports:[5-3]", "disk(/x):1", "bugs:[1-2]", "gpus:-1"], errors, strict=True):
            self.assertIn(repr(part), error)
        self.assertEqual(str(caught.exception), "; ".join(errors))

    def test_json_example(self) -> None:
        """to_json gives v1 Resource objects with static reservations and allocation_info."""
        data = Resources.parse("cpus(ads):0.5;ports:[1-2,4-4];bugs:{x}").to_json("ads")
        self.assertEqual(data, [
            {"name": "cpus", "role": "ads", "type": "SCALAR", "scalar": {"value": 0.5},
             "reservations": [{"type": "STATIC", "role": "ads"}], "allocation_info": {"role": "ads"}},
            {"name": "ports", "role": "*", "type": "RANGES",
             "ranges": {"range": [{"begin": 1, "end": 2}, {"begin": 4, "end": 4}]}, "allocation_info": {"role": "ads"}},
            {"name": "bugs", "role": "*", "type": "SET", "set": {"item": ["x"]}, "allocation_info": {"role": "ads"}},
        ])

    def test_json_reservation_role_wins(self) -> None:
        """The last reservation's role is the resource's role (the v1 reservation refinement)."""
        data = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                 "reservations": [{"type": "STATIC", "role": "a"}, {"type": "DYNAMIC", "role": "a/b"}]}]
        self.assertEqual(Resources.from_json(data).roles(), {"a/b"})
        self.assertEqual(Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                                               "reservations": [{"type": "STATIC", "role": "b"}]}]),
                         Resources.parse("cpus(b):1"))

    def test_json_errors_all_reported(self) -> None:
        """from_json reports every bad Resource, each with its index."""
        data = [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": "x"}},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 5, "end": 3}]}},
            {"type": "NOPE"},
            {"name": "mem", "type": "SCALAR", "role": "a//b", "scalar": {"value": 1}},
            7,
        ]
        with self.assertRaises(ValidationError) as caught:
            Resources.from_json(data)
        errors = caught.exception.errors
        self.assertEqual(errors[:6], [
            "resources[0].scalar.value must be a number, not a string",
            "resources[1].ports range 5-3 ends before it begins",
            "resources[2].name is required",
            "resources[2].type must be one of RANGES, SCALAR, SET, not 'NOPE'",
            "resources[3].role invalid role 'a//b': no leading, trailing or double slash",
            "resources[4] must be an object, not a number",
        ])
        self.assertTrue(all(e.startswith("resources[4]") for e in errors[6:]), errors)

    def test_json_duplicate_types_and_not_a_list(self) -> None:
        """A name with two types, and a non-list, are refused."""
        with self.assertRaises(ValidationError) as caught:
            Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                                 {"name": "cpus", "type": "SET", "set": {"item": ["a"]}}])
        self.assertEqual(caught.exception.errors, ["resources[1] gives cpus with two different types"])
        with self.assertRaises(ValidationError) as caught:
            Resources.from_json({"name": "cpus"}, what="agent.resources")
        self.assertEqual(caught.exception.errors, ["agent.resources must be a list of Resource objects"])
        with self.assertRaises(ValidationError):
            Resources.parse("[not json")

    def test_read_records_on_reader(self) -> None:
        """Resources.read records problems on the given Reader with its path."""
        reader = Reader({"resources": [{"name": "cpus"}]}, "agent_info")
        Resources.read(reader, "resources")
        self.assertEqual(reader.errors, ["agent_info.resources[0].type is required"])

    def test_read_again(self) -> None:
        """A list read before gives the same bag without being read again; one that had problems is read (and
        its problems reported) every time; JSON that Python's equality confuses (1, 1.0, true) is told apart."""
        for role in ({}, {"role": "*"}):  # remembered by their JSON text, and (unreserved scalars) by a tuple
            self.check_read_again([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, **role}])

    def check_read_again(self, cpus: list[dict]) -> None:
        from mesostw.model import resources as module

        first = Resources.read(Reader({"resources": cpus}), "resources")
        self.assertIs(Resources.read(Reader({"resources": json.loads(json.dumps(cpus))}), "resources"), first)
        self.assertEqual(Resources.read(Reader({"resources": [{**cpus[0], "scalar": {"value": 1.0}}]}),
                                        "resources"), first)
        for _ in range(2):
            reader = Reader({"resources": [{**cpus[0], "scalar": {"value": True}}]}, "task")
            self.assertEqual(Resources.read(reader, "resources"), EMPTY)
            self.assertEqual(reader.errors, ["task.resources[0].scalar.value must be a number, not a boolean"])
        for _ in range(2):
            reader = Reader({"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]}, "task")
            Resources.read(reader, "resources")
            self.assertEqual(reader.errors, ["task.resources[0].cpus scalar must not be negative"])
        full = module._READ_MAX
        module._READ_MAX = 1
        try:
            self.assertEqual(Resources.read(Reader({"resources": cpus * 2}), "resources"), Resources.parse("cpus:2"))
            self.assertEqual(len(module._READ), 1)  # full: forgotten, then this one remembered
        finally:
            module._READ_MAX = full

    def test_model_example(self) -> None:
        """model() is the flat v0 object with the four basic scalars always present."""
        r = Resources.parse("cpus:2;cpus(ads):1;mem:1024;ports:[31000-32000];bugs(role):{a,b}")
        self.assertEqual(r.model(), {"cpus": 3.0, "gpus": 0.0, "mem": 1024.0, "disk": 0.0,
                                     "ports": "[31000-32000]", "bugs": "{a, b}"})
        self.assertEqual(EMPTY.model(), {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0})

    def test_inspection_helpers(self) -> None:
        """scalar(), scalars(), ranges() and set_items() total over roles."""
        r = Resources.parse("cpus:1;cpus(a):2.5;ports:[1-5];ports(a):[6-9];bugs:{x};bugs(a):{y}")
        self.assertEqual(r.scalar("cpus"), 3.5)
        self.assertEqual(r.scalars(), {"cpus": 3.5})
        self.assertEqual(r.ranges("ports"), ((1, 9),))
        self.assertEqual(r.set_items("bugs"), frozenset("xy"))
        self.assertEqual(r.names(), {"cpus", "ports", "bugs"})
        self.assertEqual(Resources.of("a", cpus=1, mem=0), Resources.parse("cpus(a):1"))

    def test_subtraction_ignores_what_is_absent(self) -> None:
        """Subtracting more than is there leaves nothing, never a negative amount."""
        self.assertEqual(Resources.of(cpus=1) - Resources.of(cpus=3, mem=5), EMPTY)
        self.assertEqual(Resources.parse("ports:[1-10]") - Resources.parse("ports:[3-4,8-20]"),
                         Resources.parse("ports:[1-2,5-7]"))

    def test_contains_respects_roles(self) -> None:
        """Reserved resources do not satisfy a request for unreserved ones, nor the reverse."""
        self.assertFalse(Resources.parse("cpus(a):4").contains(Resources.parse("cpus:1")))
        self.assertFalse(Resources.parse("cpus:4").contains(Resources.parse("cpus(a):1")))
        self.assertFalse(Resources.parse("ports:[1-5,7-9]").contains(Resources.parse("ports:[5-7]")))
        self.assertTrue(Resources.parse("ports:[1-5,6-9]").contains(Resources.parse("ports:[5-7]")))

    def test_equality_and_hash(self) -> None:
        """Equal resources hash equally regardless of the order they were written in."""
        a = Resources.parse("cpus:1;mem:2;ports:[3-4,1-2]")
        b = Resources.parse("ports:[1-4];mem:2;cpus:1")
        self.assertEqual(a, b)
        self.assertEqual(hash(a), hash(b))
        self.assertNotEqual(a, "cpus:1;mem:2;ports:[1-4]")
        self.assertEqual(repr(a), "Resources('cpus:1;mem:2;ports:[1-4]')")


class NamedInTests(unittest.TestCase):
    """named_in lists what a --resources text mentions."""

    def test_text(self) -> None:
        """Names given as zero or with a role are listed too."""
        self.assertEqual(named_in("cpus:0;mem(ads):1;ports:[]"), {"cpus", "mem", "ports"})

    def test_json(self) -> None:
        """JSON arrays give their names; garbage gives nothing."""
        self.assertEqual(named_in('[{"name": "gpus"}, {"name": 3}, 5]'), {"gpus"})
        self.assertEqual(named_in("[oops"), set())


class AttributeTests(unittest.TestCase):
    """--attributes parsing and its JSON shapes."""

    def test_parse_infers_types(self) -> None:
        """Numbers become floats, [..] ranges, {..} sets, anything else text."""
        attrs = parse_attributes("rack:r1;zone:a;level:10;keys:[1000-1500];tags:{x,y};url:http://h:1")
        self.assertEqual(attrs, {"rack": "r1", "zone": "a", "level": 10.0, "keys": ((1000, 1500),),
                                 "tags": frozenset("xy"), "url": "http://h:1"})

    def test_parse_errors_all_reported(self) -> None:
        """Every malformed attribute is reported at once."""
        with self.assertRaises(ValidationError) as caught:
            parse_attributes("rack;zone:;keys:[9-1];ok:1")
        self.assertEqual(caught.exception.errors, [
            "bad attribute 'rack': expected name:value",
            "bad attribute 'zone:': expected name:value",
            "bad attribute 'keys:[9-1]': range 9-1 ends before it begins",
        ])

    def test_json_round_trip_and_model(self) -> None:
        """attributes_to_json and attributes_from_json are inverse; model() formats ranges and sets."""
        attrs = parse_attributes("rack:r1;level:10.5;keys:[1-2,4-5];tags:{y,x}")
        reader = Reader({"attributes": attributes_to_json(attrs)})
        self.assertEqual(attributes_from_json(reader, "attributes"), attrs)
        self.assertEqual(reader.errors, [])
        self.assertEqual(attributes_model(attrs),
                         {"rack": "r1", "level": 10.5, "keys": "[1-2, 4-5]", "tags": "{x, y}"})
