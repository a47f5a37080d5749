"""A master process with ``--work_dir``: its registry survives restarts, an earlier version's
``registry.json`` is imported once, and a second master on the same directory is refused."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers.processes import Daemon, free_port, get_json, http, wait_for


class MasterWorkDirTests(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="mesostw-test-"))
        self.addCleanup(shutil.rmtree, self.base, True)
        self.work_dir = os.path.join(self.base, "master")
        self.port = free_port()

    def master(self, name: str = "master", port: int | None = None) -> Daemon:
        daemon = Daemon("mesos-master", [f"--port={port or self.port}", f"--work_dir={self.work_dir}"],
                        os.path.join(self.base, f"{name}.log"))
        self.addCleanup(daemon.stop)
        return daemon.start()

    def weights(self) -> defer.Deferred:
        return get_json(f"http://127.0.0.1:{self.port}/master/weights")

    @defer.inlineCallbacks
    def serving(self) -> Any:
        yield wait_for(lambda: self.weights().addCallbacks(lambda _: True, lambda _: False), 30,
                       what="the master to serve")

    @defer.inlineCallbacks
    def test_registry_survives_a_restart(self) -> Any:
        """Weights set through the API are in the registry under work_dir/registry after a restart."""
        first = self.master()
        yield self.serving()
        body = json.dumps([{"role": "ops", "weight": 2.5}]).encode()
        code, data, _ = yield http("PUT", f"http://127.0.0.1:{self.port}/master/weights", body)
        self.assertEqual(code, 200, data)
        first.stop()
        self.assertIn("Server Shut Down", first.log())
        self.assertEqual(sorted(os.listdir(os.path.join(self.work_dir, "registry"))), ["journal.0", "lock"])
        self.master("again")
        yield self.serving()
        self.assertEqual((yield self.weights()), [{"role": "ops", "weight": 2.5}])

    @defer.inlineCallbacks
    def test_registry_json_of_an_earlier_version_is_imported(self) -> Any:
        """A registry.json found in work_dir is imported once, with a log line, and kept as .imported."""
        os.makedirs(self.work_dir)
        legacy = os.path.join(self.work_dir, "registry.json")
        with open(legacy, "w") as f:
            json.dump({"agents": {}, "frameworks": {}, "weights": {"dev": 0.5}}, f)
        master = self.master()
        yield self.serving()
        self.assertEqual((yield self.weights()), [{"role": "dev", "weight": 0.5}])
        self.assertIn("Imported the registry of an earlier version", master.log())
        self.assertFalse(os.path.exists(legacy))
        self.assertTrue(os.path.exists(legacy + ".imported"))

    @defer.inlineCallbacks
    def test_second_master_on_the_same_work_dir_is_refused(self) -> Any:
        """A second master on a work_dir in use exits with status 1, naming the process that holds it."""
        first = self.master()
        yield self.serving()
        second = self.master("second", port=free_port())
        yield wait_for(lambda: not second.alive(), 30, what="the second master to exit")
        self.assertEqual(second.process.returncode, 1)  # type: ignore[union-attr]
        self.assertIn(f"in use by another process (pid {first.pid})", second.log())
        self.assertTrue(first.alive())
