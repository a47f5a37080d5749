"""Hypothesis strategies for what a hostile or broken peer may send: JSON of any shape, mutated valid
messages, non-JSON payloads and raw HTTP pieces. Used by the boundary fuzz tests."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

#: Keys of Mesos messages, so that generated objects often hit real fields.
FIELDS = ("type", "value", "framework_id", "agent_id", "slave_id", "executor_id", "task_id", "subscribe",
          "framework_info", "user", "name", "id", "role", "roles", "capabilities", "failover_timeout",
          "checkpoint", "accept", "decline", "offer_ids", "operations", "launch", "task_infos", "launch_group",
          "task_group", "tasks", "executor", "resources", "scalar", "ranges", "range", "begin", "end", "set",
          "item", "reservations", "command", "shell", "arguments", "environment", "variables", "uris", "status",
          "state", "uuid", "data", "message", "kill", "kill_policy", "grace_period", "nanoseconds", "filters",
          "refuse_seconds", "reconcile", "revive", "suppress", "acknowledge", "shutdown", "hostname", "port",
          "attributes", "text", "agent_info", "version", "executors", "frameworks", "statuses", "update",
          "unacknowledged_tasks", "unacknowledged_updates", "timestamp", "source", "reason", "healthy",
          "allocation_info", "url", "address", "master_info", "pid", "force")

#: Scalars that have broken parsers before: wrong types, edge numbers, hostile strings.
NASTY = (None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**400, -(10**400), 1e308, -1e308,
         float("nan"), float("inf"), float("-inf"), 1e-320, 0.5, "", " ", "0", "-5", "--5", "1e3", "²", "٣",
         "9" * 30, "1" * 5000, "/", "..", ".", "a/b", "a\\b", "a\x00b", "\x7f", "\n", "\ud800", "é", "*",
         "SCALAR", "RANGES", "SET", "TEXT", "cpus", "mem", "ports", "SUBSCRIBE", "ACCEPT", "LAUNCH", "LAUNCH_GROUP",
         "TASK_RUNNING", "TASK_FINISHED", "AAAA", "not base64!", "x" * 300, "x" * 70000)



def pick(values: tuple | list) -> st.SearchStrategy[Any]:
    """``sampled_from`` whose repr stays short however large the values are."""
    values = tuple(values)
    return st.sampled_from(range(len(values))).map(values.__getitem__)


scalars = (pick(NASTY) | st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
keys = st.sampled_from(FIELDS) | st.text(max_size=6)


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Any JSON value (and Python's NaN/inf extensions), favouring Mesos field names and nasty scalars."""
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                        | st.dictionaries(keys, inner, max_size=6), max_leaves=max_leaves)


def nested(depth: int, leaf: Any = 0) -> Any:
    """A list nested ``depth`` deep, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indexes) to a node of a JSON value, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(paths(item, prefix + (key,)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(paths(item, prefix + (index,)))
    return out


def _parent(root: Any, path: tuple) -> Any:
    for step in path[:-1]:
        root = root[step]
    return root


REPLACEMENTS = (pick(NASTY) | json_values(8) | st.just({}) | st.just([])
                | pick([nested(200), nested(30, {}), [0] * 2000, {"value": "x" * 300},
                        {"value": "a/b"}, {"value": "a\x01b"}, {"value": ".."}, {"value": ""}]))


@st.composite
def mutated(draw: Any, messages: st.SearchStrategy[Any], max_mutations: int = 4) -> Any:
    """A valid JSON message drawn from ``messages`` with a few fields replaced, removed, added or wrapped."""
    value = copy.deepcopy(draw(messages))
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(paths(value)))
        action = draw(st.sampled_from(("replace", "replace", "delete", "add", "wrap", "duplicate")))
        if not path:
            if action in ("replace", "delete"):
                value = copy.deepcopy(draw(REPLACEMENTS))
            elif action == "wrap":
                value = [value]
            continue
        parent, last = _parent(value, path), path[-1]
        if action == "replace":
            parent[last] = copy.deepcopy(draw(REPLACEMENTS))
        elif action == "delete":
            del parent[last]
        elif action == "wrap":
            parent[last] = [parent[last]] if draw(st.booleans()) else {"value": parent[last]}
        elif action == "duplicate" and isinstance(parent, list):
            parent.extend(copy.deepcopy(parent[last]) for _ in range(draw(st.integers(1, 50))))
        elif isinstance(parent[last], dict):
            parent[last][draw(keys)] = copy.deepcopy(draw(REPLACEMENTS))
        else:
            parent[last] = copy.deepcopy(draw(REPLACEMENTS))
    return value


def encode(value: Any) -> bytes:
    """JSON bytes as a peer might send them (NaN and Infinity included)."""
    return json.dumps(value).encode("utf-8", "surrogatepass")


#: Payloads that are not JSON bytes, or not JSON at all.
NON_BYTES = pick([None, 0, 1.5, True, "[]", "text", [], {}, [b"[]"], (1, 2), {"a": b"x"}])
BROKEN_JSON = pick([b"", b"[", b"{", b"[1,", b'{"type":', b"\xff\xfe", b"\xc3\x28", b"null", b"NaN",
                               b"[" * 5000 + b"]" * 5000, b"{\"a\":" * 3000 + b"1" + b"}" * 3000,
                               b"[" + b"0," * 200_000 + b"0]", b'"' + b"\\u0000" * 1000 + b'"',
                               b"1" * 5000, b"[\"\\ud800\"]"])


def garbage(messages: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """What may arrive where JSON bytes are expected: anything."""
    options = [st.binary(max_size=200), NON_BYTES, BROKEN_JSON, json_values().map(encode)]
    if messages is not None:
        options.append(messages.map(encode))
        options.append(st.lists(messages, max_size=4).map(encode))
    return st.one_of(*options)


# -- HTTP ------------------------------------------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]) | st.text(
    _TOKEN_CHARS, min_size=1, max_size=10)
#: Header values: visible ASCII and a little Latin-1, never CR or LF.
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                        max_size=60) | pick(["", "x" * 8000, "application/json; charset=utf-8"])
content_types = pick([None, "", "application/json", "application/JSON", "application/json; charset=latin1",
                                 "application/x-protobuf", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", ";;;", "application/json;" + "x" * 5000])
accepts = st.sampled_from([None, "", "*/*", "application/json", "application/x-protobuf", "text/html",
                           "application/*;q=0.1", ",,,"])


def path_chars(max_size: int = 30) -> st.SearchStrategy[str]:
    """A URL path suffix: percent-escapes, dots, slashes and anything printable."""
    pieces = st.sampled_from(list("abc./%?&=;()[]~_-") + ["%00", "%ff", "%2e", "%2F", "%2e%2e", "..", "//", "é"])
    return st.lists(pieces, max_size=max_size).map("".join)
