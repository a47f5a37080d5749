"""Hypothesis strategies for what a hostile or broken peer may send: JSON of any shape, mutated valid
messages (and the valid messages to mutate), non-JSON payloads and raw HTTP requests. Used by the
boundary fuzz tests."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from mesostw.model import executor_api as xapi
from mesostw.model import internal
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, wrap
from mesostw.model.resources import Resources
from mesostw.model.task import Offer, Operation, Task, TaskInfo, TaskStatus, new_uuid
from mesostw.model.validation import b64

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


#: What a mutation puts in place of a field.
REPLACEMENTS: st.SearchStrategy[Any] = (
    pick(NASTY) | json_values(8) | st.just({}) | st.just([])
    | pick([nested(200), nested(30, {}), [0] * 2000, {"value": "x" * 300}, {"value": "a/b"}, {"value": "a\x01b"},
            {"value": ".."}, {"value": ""}]))


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
                    b"[" + b"0," * 200_000 + b"0]", b'"' + b"\\u0000" * 1000 + b'"', b"1" * 5000,
                    b"[\"\\ud800\"]"])


def garbage(messages: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """What may arrive where JSON bytes are expected: anything."""
    options = [st.binary(max_size=200), NON_BYTES, BROKEN_JSON, json_values().map(encode)]
    if messages is not None:
        options.append(messages.map(encode))
        options.append(st.lists(messages, max_size=4).map(encode))
    return st.one_of(*options)


# -- valid messages to mutate ----------------------------------------------------------------------------------

SMALL = "cpus:0.1;mem:32"


def agent_info(agent_id: str | None = None) -> AgentInfo:
    return AgentInfo(hostname="fuzz.example", resources=Resources.parse("cpus:1;mem:128;ports:[31000-31010]"),
                     attributes={"rack": "r1", "level": 3.0}, id=agent_id)


def reregistration(agent_id: str, framework_id: str) -> dict[str, Any]:
    info = TaskInfo("fz", "fz-running", agent_id, Resources.parse("cpus:0.5;mem:64"), CommandInfo("sleep 9"))
    status = TaskStatus("fz-running", T.RUNNING, uuid=b"u" * 16, timestamp=1.0)
    running = Task(info, framework_id, state=T.RUNNING, statuses=[status], status_update_uuid=b"u" * 16)
    executor = ExecutorInfo("fz-executor", framework_id, CommandInfo("exec"), Resources.parse(SMALL))
    return internal.reregistration(agent_info(agent_id), [running], [executor],
                                   [FrameworkInfo("nobody", "victim", id=framework_id)], "1.0.0")


def agent_to_master(framework_id: str, task_id: str) -> list[dict[str, Any]]:
    status = TaskStatus(task_id, T.FINISHED, message="done", source=T.SOURCE_EXECUTOR, uuid=new_uuid(),
                        timestamp=2.0, executor_id="fz-executor", healthy=True)
    return [internal.status_update(framework_id, status),
            internal.status_update(framework_id, TaskStatus(task_id, T.RUNNING, uuid=new_uuid(), timestamp=1.5)),
            internal.exited_executor(framework_id, "fz-executor", 0),
            internal.executor_to_framework(framework_id, "fz-executor", b"\x00data"),
            internal.unregister_agent()]


def subscribe_call(**info: Any) -> dict[str, Any]:
    framework = FrameworkInfo("nobody", "fuzz", failover_timeout=0.0, capabilities=frozenset({"MULTI_ROLE"}),
                              roles=("*",), **info)
    return api.call(None, "SUBSCRIBE", {"framework_info": framework.to_json(), "force": False})


def scheduler_calls(framework_id: str, offers: list[Offer]) -> list[dict[str, Any]]:
    """One valid call of each kind, aimed at the framework's current offers."""
    offer_ids = [wrap(o.id) for o in offers[:2]] or [wrap("no-such-offer")]
    agent_id = offers[0].agent_id if offers else "M-S0"
    task = TaskInfo("fz", "fz-task", agent_id, Resources.parse(SMALL), CommandInfo("true"))
    executor = ExecutorInfo("fz-group", None, CommandInfo("exec"), Resources.parse(SMALL))
    group = Operation(T.LAUNCH_GROUP, (TaskInfo("fz", "fz-member", agent_id, Resources.parse(SMALL)),), executor)
    return [api.call(framework_id, "ACCEPT", {"offer_ids": offer_ids, "filters": {"refuse_seconds": 1.0},
                                              "operations": [Operation(T.LAUNCH, (task,)).to_json()]}),
            api.call(framework_id, "ACCEPT", {"offer_ids": offer_ids, "operations": [group.to_json()]}),
            api.call(framework_id, "DECLINE", {"offer_ids": offer_ids, "filters": {"refuse_seconds": 0.5}}),
            api.call(framework_id, "REVIVE", {"roles": ["*"]}),
            api.call(framework_id, "SUPPRESS", {"roles": ["*"]}),
            api.call(framework_id, "KILL", {"task_id": wrap("fz-task"), "agent_id": wrap(agent_id),
                                            "kill_policy": {"grace_period": {"nanoseconds": 1000}}}),
            api.call(framework_id, "SHUTDOWN", {"executor_id": wrap("fz-group"), "agent_id": wrap(agent_id)}),
            api.call(framework_id, "ACKNOWLEDGE", {"agent_id": wrap(agent_id), "task_id": wrap("fz-task"),
                                                   "uuid": b64(new_uuid())}),
            api.call(framework_id, "RECONCILE", {"tasks": [{"task_id": wrap("fz-task"), "agent_id": wrap(agent_id)}]}),
            api.call(framework_id, "MESSAGE", {"agent_id": wrap(agent_id), "executor_id": wrap("fz-group"),
                                               "data": b64(b"hello")}),
            api.call(framework_id, "REQUEST", {}),
            api.call(framework_id, "TEARDOWN")]


def master_to_agent(agent_id: str, framework_id: str, executor_id: str, task_id: str) -> list[dict[str, Any]]:
    framework = FrameworkInfo("nobody", "victim", id=framework_id)
    command = TaskInfo("fz", "fz-command", agent_id, Resources.parse(SMALL), CommandInfo("true"))
    custom = TaskInfo("fz", "fz-custom", agent_id, Resources.parse(SMALL),
                      executor=ExecutorInfo("fz-exec", framework_id, CommandInfo("exec"), Resources.parse(SMALL)))
    return [internal.run_tasks(framework, [command], None),
            internal.run_tasks(framework, [custom], None),
            internal.kill_task(framework_id, task_id, 1.0),
            internal.acknowledgement(framework_id, task_id, new_uuid()),
            internal.shutdown_executor(framework_id, "fz-exec"),
            internal.framework_to_executor(framework_id, executor_id, b"msg"),
            internal.shutdown_framework(framework_id),
            internal.agent_removed("fuzzed away")]


def executor_calls(framework_id: str, executor_id: str, task_id: str) -> list[dict[str, Any]]:
    status = TaskStatus(task_id, T.RUNNING, source=T.SOURCE_EXECUTOR, uuid=new_uuid(), timestamp=3.0)
    return [xapi.update_call(framework_id, executor_id, status),
            xapi.update_call(framework_id, executor_id, TaskStatus(task_id, T.FINISHED, uuid=new_uuid())),
            xapi.message_call(framework_id, executor_id, b"\xffbytes"),
            {"type": "HEARTBEAT", "framework_id": wrap(framework_id), "executor_id": wrap(executor_id)}]


# -- HTTP ------------------------------------------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]) | st.text(
    _TOKEN_CHARS, min_size=1, max_size=10)
#: Header values: printable ASCII and Latin-1 (not UTF-8 once on the wire), never CR or LF.
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


QUERY_KEYS = ("path", "offset", "length", "jsonp", "limit", "order", "framework_id", "frameworkId", "taskId",
              "task_id", "slave_id")
HEADER_NAMES = ("X-Fuzz", "Accept", "Content-Type", "Mesos-Stream-Id", "Authorization", "Accept-Encoding",
                "Cookie", "Range", "Origin", "Connection", "If-None-Match")
AUTHORIZATIONS = st.sampled_from(["Basic", "Basic !!!", "Basic " + b64(b"user:secret"), "Basic " + b64(b"\xff:\xfe"),
                                  "Basic " + b64(b"no-colon"), "Bearer token", "basic " + "A" * 4000])
#: Twisted's own limit on a request's header block; beyond it Twisted answers before any resource.
HEADER_BLOCK = 16384


def query_strings(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    def join(pairs: list[tuple[str, str]]) -> str:
        return "&".join(f"{quote(k.encode('utf-8', 'surrogatepass'))}={quote(v.encode('utf-8', 'surrogatepass'))}"
                        for k, v in pairs)

    pairs = st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=4), values), max_size=4)
    return st.none() | pairs.map(join) | path_chars(20)


@st.composite
def http_requests(draw: Any, paths: list[str], bodies: st.SearchStrategy[bytes],
                  query_values: st.SearchStrategy[str], stream_id: str | None = None) -> tuple[str, bytes]:
    """(method, raw HTTP/1.0 request): a known or made-up path, any query, headers and body."""
    method = draw(methods)
    path = draw(st.sampled_from(paths) | path_chars().map(lambda p: "/" + p))
    path += draw(st.sampled_from(["", "", "", "/", ".json", "/x", "//", "%2F"]) | path_chars(6))
    query = draw(query_strings(query_values))
    target = (path + ("?" + query if query is not None else "")).encode("utf-8", "surrogatepass")
    # Twisted itself refuses request-targets with bytes outside 33-176; those never reach a router.
    target = b"".join(bytes([c]) if 32 < c <= 176 else b"%%%02X" % c for c in target)
    headers = draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values | AUTHORIZATIONS), max_size=3))
    content_type, accept = draw(content_types), draw(accepts)
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if accept is not None:
        headers.append(("Accept", accept))
    if stream_id is not None and draw(st.booleans()):
        headers.append(("Mesos-Stream-Id", stream_id))
    body = draw(bodies)
    head = f"{method} ".encode() + target + b" HTTP/1.0\r\nHost: fuzz\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers).encode("latin-1")
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()
    if len(head) >= HEADER_BLOCK:
        head = f"{method} /health HTTP/1.0\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return method, head + body


def http_bodies(*valid: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    messages = st.sampled_from([m for group in valid for m in group])
    return st.one_of(st.just(b""), st.binary(max_size=100), BROKEN_JSON, json_values().map(encode),
                     messages.map(encode), mutated(messages).map(encode),
                     st.sampled_from([b"role=x&weight=1", b"frameworkId=M-0000", b"%ff=%fe&&==&", b'"\xff"']))
