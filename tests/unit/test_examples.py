"""The example configuration in etc/ stays loadable and says what etc/README.md says."""

import os

from twisted.trial import unittest

from mesostw.auth.acls import parse_acls
from mesostw.auth.credentials import load_credential, load_credentials

ETC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "etc")


class ExampleConfigurationTests(unittest.TestCase):
    def test_credentials_in_both_forms_agree(self):
        """credentials.json and credentials.txt hold the same principals and secrets."""
        self.assertEqual(load_credentials(os.path.join(ETC, "credentials.json")),
                         load_credentials(os.path.join(ETC, "credentials.txt")))

    def test_agent_credential_is_among_the_masters(self):
        """The agent's credential is one the master accepts."""
        credential = load_credential(os.path.join(ETC, "agent-credential"))
        self.assertEqual(load_credentials(os.path.join(ETC, "credentials.json"))[credential.principal],
                         credential.secret)

    def test_acls_mean_what_the_readme_says(self):
        """Nobody runs as root, marathon only as nobody, ops as anyone else; only ops tears down, reserves
        and unreserves resources, and creates and destroys volumes."""
        acls = parse_acls("file://" + os.path.join(ETC, "acls.json"))
        self.assertFalse(acls.authorize("run_tasks", "ops", "root"))
        self.assertTrue(acls.authorize("run_tasks", "ops", "alice"))
        self.assertTrue(acls.authorize("run_tasks", "marathon", "nobody"))
        self.assertFalse(acls.authorize("run_tasks", "marathon", "alice"))
        self.assertFalse(acls.authorize("run_tasks", "dev", "nobody"))
        self.assertTrue(acls.authorize("register_frameworks", "marathon", "web"))
        self.assertFalse(acls.authorize("register_frameworks", None, "web"))
        self.assertTrue(acls.authorize("teardown_frameworks", "ops", "marathon"))
        self.assertFalse(acls.authorize("teardown_frameworks", "marathon", "marathon"))
        for action, obj in (("reserve_resources", "eng"), ("unreserve_resources", "marathon"),
                            ("create_volumes", "eng"), ("destroy_volumes", None)):
            self.assertTrue(acls.authorize(action, "ops", obj), action)
            self.assertFalse(acls.authorize(action, "marathon", obj), action)
