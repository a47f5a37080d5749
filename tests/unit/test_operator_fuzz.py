"""Fuzzing the operator API of master and agent: generated and mutated Calls (``POST /api/v1``) always get an
answer below 500 (4xx with a JSON message), the master's books still balance and it still runs a task, and the
agent never returns a byte from outside its sandboxes."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesostw.agent.files import SandboxFiles
from mesostw.agent.operator_api import AgentOperatorAPI
from mesostw.http.router import Router
from mesostw.master.operator_api import MasterOperatorAPI
from mesostw.verbosity import Verbosity
from tests.helpers import strategies as S
from tests.unit import test_fuzz_boundaries as fuzz


def calls(call_types: list[str], paths: list[str], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Valid calls of every type answered (those with a message, with one) and two that are not, to mutate."""
    out: list[dict[str, Any]] = [{"type": t} for t in [*call_types, "UNKNOWN", "PRUNE_IMAGES"]]
    out += [{"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": 1_000}}},
            {"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": 1, "duration": {"nanoseconds": 1_000}}}]
    for path in paths:
        out += [{"type": "LIST_FILES", "list_files": {"path": path}},
                {"type": "READ_FILE", "read_file": {"path": path, "offset": 0, "length": 64}}]
    return out + extra


def weighted(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Bodies: mostly valid or mutated calls (so that handlers run), sometimes any JSON or none."""
    encoded, mutated = valid.map(S.encode), S.mutated(valid, max_mutations=2).map(S.encode)
    return st.one_of(encoded, encoded, encoded, mutated, mutated, S.json_values().map(S.encode), S.BROKEN_JSON)


@st.composite
def api_requests(draw: Any, bodies: st.SearchStrategy[bytes], paths: tuple[str, ...]) -> tuple[str, bytes]:
    """Mostly well-formed POSTs of JSON to ``paths`` (so that calls reach their handlers)."""
    body = draw(bodies)
    path = draw(st.sampled_from(paths))
    content_type = draw(st.sampled_from(["application/json"] * 12 + ["application/x-protobuf", "text/plain", ""]))
    accept = draw(st.sampled_from(["", "", "", "Accept: application/json\r\n", "Accept: text/html\r\n"]))
    head = (f"POST {path} HTTP/1.0\r\nHost: fuzz\r\nContent-Type: {content_type}\r\n{accept}"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return "POST", head + body


class OperatorFuzz(fuzz.HTTPFuzz):
    def assertAnswered(self, reply: Any, method: str, raw: bytes) -> None:
        """As for every endpoint, except that 501 is the answer to a call this daemon does not implement."""
        if reply.code == 501:
            self.assertIn(b"is not implemented by this", reply.body, raw[:300])
            return
        super().assertAnswered(reply, method, raw)


class MasterOperatorFuzzTests(OperatorFuzz):
    def setUp(self) -> None:
        super().setUp()
        router = Router()
        verbosity = Verbosity()
        self.addCleanup(verbosity.revert)
        self.api = MasterOperatorAPI(self.cluster.master, {"cluster": "fuzz"}, verbosity=verbosity)
        self.api.install(router)
        self.serve(router)

    def test_calls(self) -> None:
        """Any Call, valid, mutated or garbage, is answered below 500; afterwards the master still serves."""
        framework_id = self.victim.framework_id
        extra = [{"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "web", "weight": 2.0}]}},
                 {"type": "TEARDOWN", "teardown": {"framework_id": {"value": "M-9999"}}},
                 {"type": "TEARDOWN", "teardown": {"framework_id": {"value": framework_id}}},
                 {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "no-such-agent"}}}]
        valid = st.sampled_from(calls(self.api.table.types(), ["/master/log", "/etc/passwd", ""], extra))
        bodies = weighted(valid)

        requests = api_requests(bodies, ("/api/v1", "/master/api/v1"))

        @settings(fuzz.FUZZ, max_examples=300)
        @given(st.one_of(requests, requests, requests, S.http_requests(["/api/v1"], bodies, S.scalars.map(str))))
        def throw(request: tuple[str, bytes]) -> None:
            method, raw = request
            self.assertAnswered(self.exchange(raw), method, raw)
            self.assertBooksBalance()

        throw()
        self.assertEqual(len(self.cluster.master.events), 0)  # every SUBSCRIBE went with its connection
        self.assertServes()


class AgentOperatorFuzzTests(OperatorFuzz):
    agents = 1
    SECRET = b"TOPSECRET-OUTSIDE-THE-SANDBOX"

    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="mesostw-fuzz-")
        self.addCleanup(shutil.rmtree, self.base)
        self.work_dir = os.path.join(self.base, "work")
        super().setUp()
        agent = self.cluster.agents[0]
        self.sandbox = next(iter(agent.executors())).directory
        os.makedirs(self.sandbox)
        with open(os.path.join(self.base, "secret"), "wb") as f:
            f.write(self.SECRET)
        with open(os.path.join(self.sandbox, "stdout"), "wb") as f:
            f.write(b"hello\n" * 100)
        os.symlink(os.path.join(self.base, "secret"), os.path.join(self.sandbox, "escape"))
        os.symlink(self.base, os.path.join(self.sandbox, "escape-dir"))
        os.mkfifo(os.path.join(self.sandbox, "fifo"))
        router = Router()
        verbosity = Verbosity()
        self.addCleanup(verbosity.revert)
        self.api = AgentOperatorAPI(agent, self.cluster.agent_config.rendered(),
                                    SandboxFiles(os.path.join(self.work_dir, "slaves")), verbosity=verbosity)
        self.api.install(router)
        self.serve(router)

    def test_calls(self) -> None:
        """Any Call to the agent is answered below 500, and no answer holds a byte from outside its sandboxes
        (as read, or in base64)."""
        paths = [os.path.join(self.sandbox, name) for name in ("", "stdout", "escape", "escape-dir/secret", "fifo",
                                                                "../../../../../../secret", "./stdout")]
        paths += [self.base, os.path.join(self.base, "secret"), "/etc/passwd", "/slave/log", "relative"]
        valid = st.sampled_from(calls(self.api.table.types(), paths, []))
        bodies = weighted(valid)
        leaks = [self.SECRET] + [base64.b64encode(self.SECRET[i:i + 12])[:12] for i in range(3)]

        @settings(fuzz.FUZZ, max_examples=300)
        @given(api_requests(bodies, ("/api/v1", "/slave(1)/api/v1")))
        def throw(request: tuple[str, bytes]) -> None:
            method, raw = request
            reply = self.exchange(raw)
            self.assertAnswered(reply, method, raw)
            for leak in leaks:
                self.assertNotIn(leak, reply.body)

        throw()
        self.assertServes()
