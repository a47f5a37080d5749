"""The constraint matcher: parsing, each operator's rule, and placement properties under hypothesis."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from frameworks.service import constraints as C
from frameworks.service.constraints import Placement, unmet

SETTINGS = settings(max_examples=150, deadline=None, database=None)
HOSTS = [f"host-{i}" for i in range(5)]
RACKS = {h: f"rack-{i % 2}" for i, h in enumerate(HOSTS)}


def agent(host: str) -> Placement:
    return Placement(host, {"rack": RACKS[host], "level": float(HOSTS.index(host))})


def place(constraint: C.Constraint, hosts: list[str]) -> list[str]:
    """Greedy placement of one instance per offered host, in order, as offers come."""
    placed: list[Placement] = []
    for host in hosts:
        candidate = agent(host)
        if unmet([constraint], candidate.hostname, candidate.attributes, placed) is None:
            placed.append(candidate)
    return [p.hostname for p in placed]


class ParseTests(unittest.TestCase):
    def test_valid_constraints_parse(self) -> None:
        """Two- and three-element constraints parse; operators are case-insensitive."""
        self.assertEqual(C.parse(["hostname", "unique"]).to_json(), ["hostname", "UNIQUE"])
        self.assertEqual(C.parse(["rack", "GROUP_BY", "2"]).value, "2")
        self.assertEqual(C.parse(["rack", "LIKE", "rack-[0-9]"]).operator, "LIKE")
        self.assertEqual(C.parse(["rack", "MAX_PER", "3"]).value, "3")

    def test_invalid_constraints_are_explained(self) -> None:
        """Bad shapes, operators, regexes and numbers raise ValueError with a reason."""
        cases = {
            ("hostname",): "2 or 3 fields",
            ("hostname", "SOMETIMES"): "operator",
            ("hostname", "UNIQUE", "x"): "Value specified but not used",
            ("rack", "LIKE"): "regular expression",
            ("rack", "LIKE", "("): "not a valid regular expression",
            ("rack", "MAX_PER", "zero"): "positive integer",
            ("rack", "GROUP_BY", "-1"): "integer",
        }
        for raw, expected in cases.items():
            with self.assertRaises(ValueError) as caught:
                C.parse(list(raw))
            self.assertIn(expected, str(caught.exception), raw)


class OperatorTests(unittest.TestCase):
    def test_unique_hostname(self) -> None:
        """UNIQUE hostname refuses a host that already runs an instance."""
        rule = C.parse(["hostname", "UNIQUE"])
        self.assertIsNone(unmet([rule], "a", {}, [Placement("b")]))
        self.assertEqual(unmet([rule], "a", {}, [Placement("a")]), rule)

    def test_cluster_with_and_without_value(self) -> None:
        """CLUSTER with a value pins to it; without, to the value of the first placement."""
        pinned = C.parse(["rack", "CLUSTER", "rack-1"])
        self.assertIsNone(unmet([pinned], "h", {"rack": "rack-1"}, []))
        self.assertIsNotNone(unmet([pinned], "h", {"rack": "rack-0"}, []))
        free = C.parse(["rack", "CLUSTER"])
        self.assertIsNone(unmet([free], "h", {"rack": "rack-0"}, []))
        self.assertIsNotNone(unmet([free], "h", {"rack": "rack-1"}, [Placement("g", {"rack": "rack-0"})]))

    def test_like_unlike_and_missing_attributes(self) -> None:
        """LIKE needs a full match; an agent without the attribute passes only UNLIKE."""
        like = C.parse(["rack", "LIKE", "rack-[01]"])
        unlike = C.parse(["rack", "UNLIKE", "rack-1"])
        self.assertIsNone(unmet([like], "h", {"rack": "rack-0"}, []))
        self.assertIsNotNone(unmet([like], "h", {"rack": "rack-01"}, []))
        self.assertIsNotNone(unmet([like], "h", {}, []))
        self.assertIsNone(unmet([unlike], "h", {}, []))
        self.assertIsNotNone(unmet([unlike], "h", {"rack": "rack-1"}, []))

    def test_scalars_compare_rounded(self) -> None:
        """Scalar attributes compare as numbers to 3 decimals (10 matches 10.0 and 10.0001)."""
        rule = C.parse(["level", "IS", "10"])
        self.assertIsNone(unmet([rule], "h", {"level": 10.0001}, []))
        self.assertIsNotNone(unmet([rule], "h", {"level": 10.01}, []))

    def test_max_per(self) -> None:
        """MAX_PER allows at most N instances per value."""
        rule = C.parse(["rack", "MAX_PER", "2"])
        two = [Placement("a", {"rack": "r"}), Placement("b", {"rack": "r"})]
        self.assertIsNone(unmet([rule], "c", {"rack": "r"}, two[:1]))
        self.assertIsNotNone(unmet([rule], "c", {"rack": "r"}, two))

    def test_group_by_waits_for_the_smallest_group(self) -> None:
        """GROUP_BY accepts a new value, or a known one only while it is among the smallest groups."""
        rule = C.parse(["rack", "GROUP_BY", "2"])
        placed = [Placement("a", {"rack": "r0"})]
        self.assertIsNone(unmet([rule], "b", {"rack": "r1"}, placed))
        self.assertIsNotNone(unmet([rule], "b", {"rack": "r0"}, placed), "only one group known of 2")
        placed.append(Placement("b", {"rack": "r1"}))
        self.assertIsNone(unmet([rule], "c", {"rack": "r0"}, placed))

    def test_group_by_without_a_count_cannot_know_other_values(self) -> None:
        """Without a value GROUP_BY accepts a known value while it is the only one (as Marathon)."""
        rule = C.parse(["rack", "GROUP_BY"])
        self.assertIsNone(unmet([rule], "b", {"rack": "r0"}, [Placement("a", {"rack": "r0"})]))


class PlacementProperties(unittest.TestCase):
    @SETTINGS
    @given(st.lists(st.sampled_from(HOSTS), max_size=30))
    def test_unique_never_doubles_up(self, offers: list[str]) -> None:
        """However offers arrive, UNIQUE hostname never places two instances on one host."""
        hosts = place(C.parse(["hostname", "UNIQUE"]), offers)
        self.assertEqual(len(hosts), len(set(hosts)))
        self.assertEqual(set(hosts), set(offers))

    @SETTINGS
    @given(st.lists(st.sampled_from(HOSTS), max_size=30), st.integers(1, 4))
    def test_max_per_bounds_every_value(self, offers: list[str], limit: int) -> None:
        """MAX_PER N keeps every rack at N instances or fewer."""
        racks = Counter(RACKS[h] for h in place(C.parse(["rack", "MAX_PER", str(limit)]), offers))
        self.assertTrue(all(n <= limit for n in racks.values()), racks)

    @SETTINGS
    @given(st.lists(st.sampled_from(HOSTS), max_size=30))
    def test_cluster_keeps_one_value(self, offers: list[str]) -> None:
        """CLUSTER without a value keeps every instance on the first placement's rack."""
        racks = {RACKS[h] for h in place(C.parse(["rack", "CLUSTER"]), offers)}
        self.assertLessEqual(len(racks), 1)

    @SETTINGS
    @given(st.lists(st.sampled_from(HOSTS), max_size=40))
    def test_group_by_stays_balanced(self, offers: list[str]) -> None:
        """GROUP_BY told how many racks exist keeps their counts within one of each other."""
        racks = Counter(RACKS[h] for h in place(C.parse(["rack", "GROUP_BY", "2"]), offers))
        if len(racks) == 2:
            self.assertLessEqual(max(racks.values()) - min(racks.values()), 1, racks)
