"""``twistd mesos-local``'s flags: what a local cluster cannot work with is refused before anything starts."""

from __future__ import annotations

import os

from twisted.python import usage
from twisted.trial import unittest

from mesostw import local


class LocalFlagTests(unittest.TestCase):
    def parse(self, *argv: str) -> local.Options:
        options = local.Options()
        options.parseOptions([f"--work_dir={os.path.abspath(self.mktemp())}", "--resources=cpus:1;mem:64", *argv])
        return options

    def test_port_zero_is_refused(self) -> None:
        """--port=0 is refused with a reason: the agents must be told the master's port before it listens."""
        error = self.assertRaises(usage.UsageError, self.parse, "--port=0")
        self.assertIn("--port must be a port number here (not 0)", str(error))

    def test_no_agents_is_refused(self) -> None:
        """--num_slaves=0 is refused: a local cluster has at least one agent."""
        error = self.assertRaises(usage.UsageError, self.parse, "--num_slaves=0")
        self.assertIn("--num_slaves must be at least 1", str(error))

    def test_agents_register_with_the_master_port(self) -> None:
        """Each agent gets the master's address and a work_dir of its own."""
        config = self.parse("--port=5099", "--num_slaves=2").config
        agents = [local.agent_config(config, index) for index in range(2)]
        self.assertEqual({a.master for a in agents}, {"127.0.0.1:5099"})
        self.assertEqual(len({a.work_dir for a in agents}), 2)
