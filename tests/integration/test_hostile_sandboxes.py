"""Issue 12, item 6: a task cannot read another user's sandbox from disk, and the agent's ``/files`` serves
each sandbox only to the principals the access_sandboxes ACL names.

Alice's task runs as ``nobody`` and writes a secret to its stdout; Mallory's task, on the same agent,
runs as ``daemon``; Mallory also holds valid HTTP credentials.
"""

from __future__ import annotations

import os
import pwd
import stat

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers.processes import http, wait_for
from tests.integration.hostile import HostileCluster, basic


class SandboxPrivacyTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield HostileCluster(self).start()
        self.alice, self.victim = yield self.cluster.running_task(self, "alice", "alice-task",
                                                                  "echo alice-private-data; sleep 300")
        self.stdout = os.path.join(self.victim["directory"], "stdout")
        yield wait_for(lambda: os.path.getsize(self.stdout) > 0, 30, what="alice's output")

    @defer.inlineCallbacks
    def test_another_users_task_cannot_read_the_sandbox(self):
        """Alice's sandbox is nobody's, 0750, its logs 0640; Mallory's task (as daemon) gets 'Permission
        denied' reading Alice's stdout or listing her sandbox."""
        nobody = pwd.getpwnam("nobody").pw_uid
        sandbox = os.stat(self.victim["directory"])
        self.assertEqual((sandbox.st_uid, stat.S_IMODE(sandbox.st_mode)), (nobody, 0o750))
        for name in ("stdout", "stderr"):
            log = os.stat(os.path.join(self.victim["directory"], name))
            self.assertEqual((log.st_uid, stat.S_IMODE(log.st_mode)), (nobody, 0o640))
        command = f"cat {self.stdout} > stolen 2> errors; ls {self.victim['directory']} >> stolen 2>> errors; sleep 300"
        _, thief = yield self.cluster.running_task(self, "mallory", "mallory-task", command)
        errors = os.path.join(thief["directory"], "errors")
        yield wait_for(lambda: os.path.exists(errors) and os.path.getsize(errors), 30, what="the attempt")
        with open(os.path.join(thief["directory"], "stolen")) as f:
            self.assertEqual(f.read(), "")
        with open(errors) as f:
            self.assertEqual(f.read().count("Permission denied"), 2)

    @defer.inlineCallbacks
    def test_files_obey_access_sandboxes(self):
        """/files/read of Alice's stdout: 401 without credentials, 403 for Mallory, the data for Alice and for
        ops; browsing above the sandboxes (every user's) is for ops alone; /health needs nothing."""
        url = self.cluster.agent_url(f"/files/read?offset=0&path={self.stdout}")
        code, _, _ = yield http("GET", url)
        self.assertEqual(code, 401)
        code, body, _ = yield http("GET", url, headers=basic("mallory"))
        self.assertEqual(code, 403, body)
        self.assertNotIn(b"alice-private-data", body)
        for principal in ("alice", "ops"):
            code, body, _ = yield http("GET", url, headers=basic(principal))
            self.assertEqual(code, 200, body)
            self.assertIn(b"alice-private-data", body)
        root = self.cluster.agent_url(f"/files/browse?path={os.path.join(self.cluster.base, 'agent0', 'slaves')}")
        for principal, expected in (("mallory", 403), ("alice", 403), ("ops", 200)):
            code, body, _ = yield http("GET", root, headers=basic(principal))
            self.assertEqual(code, expected, (principal, body))
        code, body, _ = yield http("GET", self.cluster.agent_url("/slave(1)/state"), headers=basic("mallory", "x"))
        self.assertEqual(code, 401, body)
        code, _, _ = yield http("GET", self.cluster.agent_url("/health"))
        self.assertEqual(code, 200)
