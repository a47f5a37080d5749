"""Tests for :mod:`mesostw.auth.acls`: parsing ``--acls`` and evaluating it as Mesos's spec tables say."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mesostw.auth.acls import (
    ACL,
    ACTIONS,
    ANY,
    IGNORED_ACTIONS,
    NONE,
    SOME,
    ACLs,
    Authorizer,
    Entity,
    acls_from_json,
    allows,
    matches,
    parse_acls,
)

SETTINGS = settings(max_examples=200, deadline=None)

# The spec's tables (section 4.2), row = request type, column = rule type. For SOME against SOME the
# answer is "request.values within rule.values": the request is SOME_IN when its value is listed in the
# rule, SOME_OUT when not.
SOME_IN, SOME_OUT = "SOME_IN", "SOME_OUT"
MATCH = {
    (SOME_IN, SOME): True, (SOME_IN, NONE): True, (SOME_IN, ANY): True,
    (SOME_OUT, SOME): False, (SOME_OUT, NONE): True, (SOME_OUT, ANY): True,
    (NONE, SOME): False, (NONE, NONE): True, (NONE, ANY): False,
    (ANY, SOME): False, (ANY, NONE): True, (ANY, ANY): True,
}
ALLOW = {
    (SOME_IN, SOME): True, (SOME_IN, NONE): False, (SOME_IN, ANY): True,
    (SOME_OUT, SOME): False, (SOME_OUT, NONE): False, (SOME_OUT, ANY): True,
    (NONE, SOME): False, (NONE, NONE): True, (NONE, ANY): False,
    (ANY, SOME): False, (ANY, NONE): False, (ANY, ANY): True,
}

RULE_ENTITIES = {SOME: Entity(SOME, frozenset({"listed", "other"})), ANY: Entity(ANY), NONE: Entity(NONE)}
REQUEST_ENTITIES = {SOME_IN: Entity(SOME, frozenset({"listed"})), SOME_OUT: Entity(SOME, frozenset({"absent"})),
                    NONE: Entity(NONE), ANY: Entity(ANY)}
# What authorize() receives for each kind of request: a known name, an unlisted one, or nobody.
REQUEST_VALUES = {SOME_IN: "listed", SOME_OUT: "absent", ANY: None}


def entity_json(kind: str) -> dict[str, Any]:
    """The JSON of a rule entity of ``kind``, as an operator would write it."""
    return {"values": ["listed", "other"]} if kind == SOME else {"type": kind}


def rule_json(action: str, subject: str, object: str) -> dict[str, Any]:
    """The JSON of one rule of ``action``."""
    return {"principals": entity_json(subject), ACTIONS[action]: entity_json(object)}


class TablesTests(unittest.TestCase):
    """``matches`` and ``allows`` are the spec's Match and Allow tables."""

    def test_match_table(self) -> None:
        """Every cell of the Match table."""
        for (request, rule), expected in MATCH.items():
            self.assertEqual(matches(REQUEST_ENTITIES[request], RULE_ENTITIES[rule]), expected, (request, rule))

    def test_allow_table(self) -> None:
        """Every cell of the Allow table."""
        for (request, rule), expected in ALLOW.items():
            self.assertEqual(allows(REQUEST_ENTITIES[request], RULE_ENTITIES[rule]), expected, (request, rule))

    def test_request_entity(self) -> None:
        """A known value is SOME of it; None (no principal) is ANY."""
        self.assertEqual(Entity.request("alice"), Entity(SOME, frozenset({"alice"})))
        self.assertEqual(Entity.request(None), Entity(ANY))


class MatrixTests(unittest.TestCase):
    """Every rule type pair against every request kind, for each action, permissive or not."""

    def check_action(self, action: str) -> None:
        """Run the full matrix for ``action`` through parsing and ``authorize``."""
        wrong = []
        for subject_rule in (SOME, ANY, NONE):
            for object_rule in (SOME, ANY, NONE):
                for permissive in (True, False):
                    acls = parse_acls(json.dumps({"permissive": permissive,
                                                  action: [rule_json(action, subject_rule, object_rule)]}))
                    for subject_request, subject in REQUEST_VALUES.items():
                        for object_request, object in REQUEST_VALUES.items():
                            matched = (MATCH[subject_request, subject_rule] and MATCH[object_request, object_rule])
                            allowed = ALLOW[subject_request, subject_rule] and ALLOW[object_request, object_rule]
                            expected = allowed if matched else permissive
                            if acls.authorize(action, subject, object) != expected:
                                wrong.append((subject_rule, object_rule, permissive, subject, object, expected))
        self.assertEqual(wrong, [])

    def test_register_frameworks(self) -> None:
        """register_frameworks (principals -> roles) follows the tables in every combination."""
        self.check_action("register_frameworks")

    def test_run_tasks(self) -> None:
        """run_tasks (principals -> users) follows the tables in every combination."""
        self.check_action("run_tasks")

    def test_teardown_frameworks(self) -> None:
        """teardown_frameworks (principals -> framework_principals) follows the tables in every combination."""
        self.check_action("teardown_frameworks")

    def test_spot_checks(self) -> None:
        """A few cells of the matrix written out, so the matrix above is not only a restatement."""
        some_any = parse_acls('{"permissive": false, "run_tasks": [{"principals": {"values": ["a"]},'
                              ' "users": {"type": "ANY"}}]}')
        self.assertTrue(some_any.authorize("run_tasks", "a", "root"))
        self.assertFalse(some_any.authorize("run_tasks", "b", "root"))
        self.assertFalse(some_any.authorize("run_tasks", None, "root"))
        any_none = parse_acls('{"run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]}')
        self.assertFalse(any_none.authorize("run_tasks", "a", "root"))
        self.assertFalse(any_none.authorize("run_tasks", None, None))
        none_some = parse_acls('{"permissive": false, "register_frameworks": [{"principals": {"type": "NONE"},'
                               ' "roles": {"values": ["prod"]}}]}')
        self.assertFalse(none_some.authorize("register_frameworks", "a", "prod"))
        self.assertFalse(none_some.authorize("register_frameworks", "a", "dev"))  # no match, not permissive


class EvaluationTests(unittest.TestCase):
    """First-match ordering and the examples of the spec and of Mesos's authorization guide."""

    def test_first_match_decides(self) -> None:
        """The first matching rule decides even when a later one would say otherwise."""
        deny_first = parse_acls('{"run_tasks": [{"principals": {"values": ["a"]}, "users": {"type": "NONE"}},'
                                ' {"principals": {"values": ["a"]}, "users": {"type": "ANY"}}]}')
        self.assertFalse(deny_first.authorize("run_tasks", "a", "bob"))
        allow_first = parse_acls('{"run_tasks": [{"principals": {"values": ["a"]}, "users": {"type": "ANY"}},'
                                 ' {"principals": {"values": ["a"]}, "users": {"type": "NONE"}}]}')
        self.assertTrue(allow_first.authorize("run_tasks", "a", "bob"))

    def test_non_matching_rules_skipped(self) -> None:
        """Rules that do not match are passed over until one does."""
        acls = parse_acls('{"permissive": false, "register_frameworks": ['
                          '{"principals": {"values": ["x"]}, "roles": {"type": "ANY"}},'
                          '{"principals": {"values": ["a"]}, "roles": {"values": ["web"]}}]}')
        self.assertTrue(acls.authorize("register_frameworks", "a", "web"))
        self.assertFalse(acls.authorize("register_frameworks", "a", "db"))

    def test_only_these(self) -> None:
        """A NONE rule after a SOME rule for the same subject means "only these"."""
        acls = parse_acls('{"run_tasks": [{"principals": {"values": ["foo"]}, "users": {"values": ["guest"]}},'
                          ' {"principals": {"values": ["foo"]}, "users": {"type": "NONE"}}]}')
        self.assertTrue(acls.authorize("run_tasks", "foo", "guest"))
        self.assertFalse(acls.authorize("run_tasks", "foo", "root"))
        self.assertTrue(acls.authorize("run_tasks", "bar", "root"))  # other principals: permissive

    def test_only_these_principals(self) -> None:
        """A NONE subject after a SOME rule for the same object means "only these principals"."""
        acls = parse_acls('{"register_frameworks": ['
                          '{"principals": {"values": ["foo"]}, "roles": {"values": ["analytics"]}},'
                          ' {"principals": {"type": "NONE"}, "roles": {"values": ["analytics"]}}]}')
        self.assertTrue(acls.authorize("register_frameworks", "foo", "analytics"))
        self.assertFalse(acls.authorize("register_frameworks", "bar", "analytics"))
        self.assertFalse(acls.authorize("register_frameworks", None, "analytics"))
        self.assertTrue(acls.authorize("register_frameworks", "bar", "web"))

    def test_nobody_runs_as_root(self) -> None:
        """``NONE`` principals with user root: no one, authenticated or not, may run as root."""
        acls = parse_acls('{"run_tasks": [{"principals": {"type": "NONE"}, "users": {"values": ["root"]}}]}')
        for principal in ("foo", "ops", "root", None):
            self.assertFalse(acls.authorize("run_tasks", principal, "root"))
            self.assertTrue(acls.authorize("run_tasks", principal, "nobody"))

    def test_spec_example(self) -> None:
        """The example of the spec's section 4.2."""
        acls = parse_acls(json.dumps({
            "permissive": True,
            "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"values": ["a"]}}],
            "run_tasks": [{"principals": {"values": ["a", "b"]}, "users": {"values": ["c"]}}],
            "shutdown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}],
        }))
        self.assertTrue(acls.authorize("register_frameworks", "anyone", "a"))
        self.assertTrue(acls.authorize("register_frameworks", None, "a"))  # ANY principals cover unauthenticated
        self.assertTrue(acls.authorize("register_frameworks", "anyone", "b"))  # no match: permissive
        self.assertTrue(acls.authorize("run_tasks", "a", "c"))
        self.assertTrue(acls.authorize("run_tasks", "b", "c"))
        self.assertTrue(acls.authorize("run_tasks", "d", "c"))  # no match: permissive
        self.assertTrue(acls.authorize("teardown_frameworks", "ops", "anything"))
        self.assertTrue(acls.authorize("teardown_frameworks", "ops", None))

    def test_permissive_false_example(self) -> None:
        """Mesos's guide: with permissive false, foo may register only as analytics and nobody else at all."""
        acls = parse_acls('{"permissive": false, "register_frameworks": [{"principals": {"values": ["foo"]},'
                          ' "roles": {"values": ["analytics"]}}]}')
        self.assertTrue(acls.authorize("register_frameworks", "foo", "analytics"))
        self.assertFalse(acls.authorize("register_frameworks", "foo", "web"))
        self.assertFalse(acls.authorize("register_frameworks", "bar", "analytics"))
        self.assertFalse(acls.authorize("register_frameworks", None, "analytics"))
        self.assertFalse(acls.authorize("run_tasks", "foo", "guest"))  # no rules at all: permissive false

    def test_only_ops_tears_down(self) -> None:
        """Mesos's guide: only ops may shut down frameworks, nobody else."""
        acls = parse_acls('{"shutdown_frameworks": ['
                          '{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},'
                          ' {"principals": {"type": "NONE"}, "framework_principals": {"type": "ANY"}}]}')
        self.assertTrue(acls.authorize("teardown_frameworks", "ops", "foo"))
        self.assertTrue(acls.authorize("teardown_frameworks", "ops", None))
        self.assertFalse(acls.authorize("teardown_frameworks", "foo", "foo"))
        self.assertFalse(acls.authorize("teardown_frameworks", None, "foo"))

    def test_unknown_action(self) -> None:
        """Asking about another action is a programming error."""
        acls = ACLs()
        error = self.assertRaises(ValueError, acls.authorize, "resize_volumes", "a", "b")
        self.assertIn("run_tasks", str(error))
        self.assertRaises(ValueError, acls.authorize, "shutdown_frameworks", "a", "b")

    def test_some_values_subset(self) -> None:
        """A SOME rule with several values covers each of them."""
        acls = parse_acls('{"permissive": false, "run_tasks": [{"principals": {"values": ["a", "b", "c"]},'
                          ' "users": {"values": ["u1", "u2"]}}]}')
        for principal in ("a", "b", "c"):
            for user in ("u1", "u2"):
                self.assertTrue(acls.authorize("run_tasks", principal, user))
        self.assertFalse(acls.authorize("run_tasks", "d", "u1"))
        self.assertFalse(acls.authorize("run_tasks", "a", "u3"))


class AliasTests(unittest.TestCase):
    """``shutdown_frameworks``, the old name of ``teardown_frameworks``."""

    def test_alias(self) -> None:
        """shutdown_frameworks rules govern teardown_frameworks, with a deprecation warning."""
        acls = parse_acls('{"permissive": false, "shutdown_frameworks": [{"principals": {"values": ["ops"]},'
                          ' "framework_principals": {"type": "ANY"}}]}')
        self.assertTrue(acls.authorize("teardown_frameworks", "ops", "x"))
        self.assertFalse(acls.authorize("teardown_frameworks", "dev", "x"))
        self.assertEqual(len(acls.teardown_frameworks), 1)
        self.assertTrue(any("deprecated" in warning for warning in acls.warnings))

    def test_both_names(self) -> None:
        """With both names, shutdown_frameworks rules come first, then teardown_frameworks, in file order."""
        shutdown = [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "NONE"}}]
        teardown = [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
                    {"principals": {"values": ["dev"]}, "framework_principals": {"type": "ANY"}}]
        for data in ({"teardown_frameworks": teardown, "shutdown_frameworks": shutdown},
                     {"shutdown_frameworks": shutdown, "teardown_frameworks": teardown}):
            acls = acls_from_json(data)
            self.assertEqual([acl.principals.values for acl in acls.teardown_frameworks],
                             [frozenset({"ops"})] * 2 + [frozenset({"dev"})])
            self.assertFalse(acls.authorize("teardown_frameworks", "ops", "x"))  # the shutdown rule decides
            self.assertTrue(acls.authorize("teardown_frameworks", "dev", "x"))
            self.assertTrue(any("both given" in warning for warning in acls.warnings))


class ParsingTests(unittest.TestCase):
    """``parse_acls`` and ``acls_from_json``."""

    def write(self, text: str) -> str:
        """Write ``text`` to a fresh file and return its path."""
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_defaults(self) -> None:
        """An empty object is permissive with no rules and no warnings."""
        self.assertEqual(parse_acls("{}"), ACLs(permissive=True))
        self.assertEqual(parse_acls(" {} ").warnings, ())

    def test_structure(self) -> None:
        """Rules become ACL objects in file order; type defaults to SOME; values are ignored for ANY/NONE."""
        acls = parse_acls('{"permissive": false, "run_tasks": ['
                          '{"principals": {"values": ["a"]}, "users": {"type": "ANY", "values": ["ignored"]}},'
                          ' {"principals": {"type": "SOME", "values": ["b", "c"]}, "users": {"type": "NONE"}}]}')
        self.assertEqual(acls.run_tasks, (
            ACL(Entity(SOME, frozenset({"a"})), Entity(ANY)),
            ACL(Entity(SOME, frozenset({"b", "c"})), Entity(NONE)),
        ))
        self.assertFalse(acls.permissive)

    def test_file_and_file_url(self) -> None:
        """``--acls`` may be a path or a file:// URL as well as inline JSON."""
        text = '{"run_tasks": [{"principals": {"type": "NONE"}, "users": {"values": ["root"]}}]}'
        path = self.write(text)
        expected = parse_acls(text)
        self.assertEqual(parse_acls(path), expected)
        self.assertEqual(parse_acls("file://" + os.path.abspath(path)), expected)

    def test_missing_file(self) -> None:
        """A path that cannot be read is a ValueError naming it."""
        path = os.path.abspath(self.mktemp())
        self.assertIn(path, str(self.assertRaises(ValueError, parse_acls, "file://" + path)))
        self.assertIn("cannot read ACLs file", str(self.assertRaises(ValueError, parse_acls, path)))

    def test_invalid_json(self) -> None:
        """Invalid JSON reports line and column, for inline values and files."""
        error = str(self.assertRaises(ValueError, parse_acls, '{"run_tasks": [}'))
        self.assertIn("invalid ACLs in --acls: invalid JSON at line 1", error)
        path = self.write('{\n "permissive": tru\n}')
        error = str(self.assertRaises(ValueError, parse_acls, path))
        self.assertIn(f"invalid ACLs in {path}: invalid JSON at line 2", error)

    def test_empty_value(self) -> None:
        """An empty ``--acls`` is an error."""
        self.assertRaises(ValueError, parse_acls, "  ")

    def test_all_errors_reported(self) -> None:
        """Every problem in the document is listed in one ValueError."""
        document = {
            "permissive": "no",
            "run_tasks": [
                {"principals": {"type": "any"}, "users": {"values": "root"}},
                {"principals": {"values": ["a"]}},
                {"principals": {"values": ["a"]}, "user": {"values": ["b"]}, "users": {"type": "ANY"}},
                "not a rule",
                {"principals": ["a"], "users": {"value": ["x"]}},
            ],
            "register_frameworks": {"principals": {"type": "ANY"}, "roles": {"type": "ANY"}},
            "teardown_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
            "run_task": [],
        }
        error = str(self.assertRaises(ValueError, acls_from_json, document))
        for expected in (
            "permissive: must be true or false",
            "run_tasks[0].principals: unknown type 'any'; expected SOME, ANY or NONE",
            "run_tasks[0].users: values must be a list of strings",
            "run_tasks[1]: missing users",
            "run_tasks[2]: unknown key 'user'",
            "run_tasks[3]: expected an object",
            "run_tasks[4].principals: expected an object",
            "run_tasks[4].users: unknown key 'value'",
            "register_frameworks: must be a list of rules",
            "teardown_frameworks[0]: unknown key 'roles'",
            "teardown_frameworks[0]: missing framework_principals",
            "unknown key 'run_task'",
        ):
            self.assertIn(expected, error)

    def test_not_an_object(self) -> None:
        """A JSON document that is not an object is an error."""
        self.assertIn("expected a JSON object", str(self.assertRaises(ValueError, acls_from_json, [])))
        self.assertRaises(ValueError, parse_acls, "/")

    def test_duplicate_keys(self) -> None:
        """A key given twice is an error, not a silently dropped list of rules."""
        error = str(self.assertRaises(ValueError, parse_acls,
                                      '{"run_tasks": [], "run_tasks": [], "permissive": true, "x": 1}'))
        self.assertIn("duplicate key 'run_tasks'", error)
        self.assertIn("unknown key 'x'", error)

    def test_other_mesos_acls_ignored(self) -> None:
        """Other Mesos ACL names are accepted, not enforced, and named in the warnings."""
        acls = parse_acls('{"kill_nested_containers": [{"principals": {"type": "NONE"}, "users": {"type": "ANY"}}],'
                          ' "resize_volumes": [], "prune_images": []}')
        self.assertEqual(acls, ACLs())
        self.assertEqual(sorted(w.split(":")[0] for w in acls.warnings),
                         ["kill_nested_containers", "prune_images", "resize_volumes"])
        self.assertTrue({"kill_nested_containers", "resize_volumes", "set_quotas"} <= IGNORED_ACTIONS)
        self.assertFalse(IGNORED_ACTIONS & set(ACTIONS))
        self.assertTrue({"register_agents", "access_sandboxes"} <= set(ACTIONS))

    def test_some_without_values_warns(self) -> None:
        """A SOME entity without values parses but is flagged: it can never match."""
        acls = parse_acls('{"run_tasks": [{"principals": {}, "users": {"type": "ANY"}}]}')
        self.assertIn("run_tasks[0].principals: SOME without values never matches", acls.warnings)
        self.assertTrue(acls.authorize("run_tasks", "a", "b"))


class AuthorizerTests(unittest.TestCase):
    """``Authorizer``: the master's entry point, with or without ACLs, counting decisions."""

    def test_without_acls(self) -> None:
        """Without --acls everything is allowed, and still counted."""
        authorizer = Authorizer()
        self.assertTrue(authorizer.authorize("run_tasks", None, "root"))
        self.assertTrue(authorizer.authorize("register_frameworks", "a", "*"))
        self.assertEqual(authorizer.decisions, {("run_tasks", "allowed"): 1, ("register_frameworks", "allowed"): 1})
        self.assertRaises(ValueError, authorizer.authorize, "resize_volumes", "a", "b")

    def test_counts(self) -> None:
        """Decisions are counted per action and outcome."""
        authorizer = Authorizer(parse_acls('{"run_tasks": [{"principals": {"type": "NONE"},'
                                           ' "users": {"values": ["root"]}}]}'))
        for user in ("root", "root", "alice"):
            authorizer.authorize("run_tasks", "fw", user)
        authorizer.authorize("teardown_frameworks", "ops", "fw")
        self.assertEqual(authorizer.decisions, {("run_tasks", "denied"): 2, ("run_tasks", "allowed"): 1,
                                                ("teardown_frameworks", "allowed"): 1})

    def test_from_flag(self) -> None:
        """from_flag: unset or blank means no ACLs; otherwise the value is parsed."""
        self.assertIsNone(Authorizer.from_flag(None).acls)
        self.assertIsNone(Authorizer.from_flag(" ").acls)
        self.assertFalse(Authorizer.from_flag('{"permissive": false}').authorize("run_tasks", "a", "b"))


names = st.one_of(st.none(), st.sampled_from(["listed", "other", "a", "root", "*", ""]), st.text(max_size=5))
actions = st.sampled_from(sorted(ACTIONS))


class PropertyTests(unittest.TestCase):
    """Properties that hold for every request."""

    @SETTINGS
    @given(action=actions, subject=names, object=names)
    def test_permissive_empty_allows(self, action: str, subject: str | None, object: str | None) -> None:
        """permissive with no rules for the action allows every request."""
        self.assertTrue(ACLs(permissive=True).authorize(action, subject, object))

    @SETTINGS
    @given(action=actions, subject=names, object=names)
    def test_strict_empty_denies(self, action: str, subject: str | None, object: str | None) -> None:
        """Not permissive with no rules denies every request."""
        self.assertFalse(ACLs(permissive=False).authorize(action, subject, object))

    @SETTINGS
    @given(action=actions, subject=names, object=names, permissive=st.booleans())
    def test_any_any_allows(self, action: str, subject: str | None, object: str | None, permissive: bool) -> None:
        """A single ANY/ANY rule allows every request, permissive or not."""
        acls = acls_from_json({"permissive": permissive, action: [rule_json(action, ANY, ANY)]})
        self.assertTrue(acls.authorize(action, subject, object))

    @SETTINGS
    @given(action=actions, subject=names, object=names, permissive=st.booleans())
    def test_none_none_denies(self, action: str, subject: str | None, object: str | None, permissive: bool) -> None:
        """A single NONE/NONE rule matches and denies every request, permissive or not."""
        acls = acls_from_json({"permissive": permissive, action: [rule_json(action, NONE, NONE)]})
        self.assertFalse(acls.authorize(action, subject, object))

    @SETTINGS
    @given(action=actions, subject=names, object=names, permissive=st.booleans(),
           subject_kind=st.sampled_from([ANY, NONE]), object_kind=st.sampled_from([ANY, NONE]))
    def test_any_none_rules(self, action: str, subject: str | None, object: str | None, permissive: bool,
                            subject_kind: str, object_kind: str) -> None:
        """A single rule of ANY/NONE entities always matches; it allows only when both are ANY."""
        acls = acls_from_json({"permissive": permissive, action: [rule_json(action, subject_kind, object_kind)]})
        self.assertEqual(acls.authorize(action, subject, object), subject_kind == object_kind == ANY)

    @SETTINGS
    @given(action=actions, subject=names, object=names, permissive=st.booleans(),
           listed=st.frozensets(st.sampled_from(["a", "b", "root", "*", "ops", ""]), max_size=4))
    def test_some_subject_any_object(self, action: str, subject: str | None, object: str | None,
                                     permissive: bool, listed: frozenset[str]) -> None:
        """A single SOME{listed}/ANY rule allows listed principals and leaves the rest to permissive."""
        acls = acls_from_json({"permissive": permissive,
                               action: [{"principals": {"values": sorted(listed)}, ACTIONS[action]: {"type": ANY}}]})
        expected = True if subject is not None and subject in listed else permissive
        self.assertEqual(acls.authorize(action, subject, object), expected)

    @SETTINGS
    @given(action=actions, subject=names, object=names, permissive=st.booleans(),
           rules=st.lists(st.tuples(st.sampled_from([SOME, ANY, NONE]), st.sampled_from([SOME, ANY, NONE])),
                          max_size=4))
    def test_first_match(self, action: str, subject: str | None, object: str | None, permissive: bool,
                         rules: list[tuple[str, str]]) -> None:
        """Rules after the first matching one never change the decision; with no match, permissive decides."""
        document: dict[str, Any] = {"permissive": permissive, action: [rule_json(action, s, o) for s, o in rules]}
        before = acls_from_json(document).authorize(action, subject, object)
        request_subject, request_object = Entity.request(subject), Entity.request(object)
        first = next(((s, o) for s, o in rules if matches(request_subject, RULE_ENTITIES[s])
                      and matches(request_object, RULE_ENTITIES[o])), None)
        if first is None:
            self.assertEqual(before, permissive)
        else:
            s, o = first
            expected = allows(request_subject, RULE_ENTITIES[s]) and allows(request_object, RULE_ENTITIES[o])
            self.assertEqual(before, expected)
        document[action] = document[action] + [rule_json(action, NONE, NONE)]  # matches everything, denies
        after = acls_from_json(document).authorize(action, subject, object)
        self.assertEqual(after, before if first is not None else False)
