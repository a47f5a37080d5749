"""A master, an agent, a PB framework and executors, all over mutual TLS."""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cluster import command_task
from tests.helpers.processes import ProcessCluster, wait_for
from tests.helpers.tls import pki
from tests.integration.test_core_cluster import LaunchingScheduler


class TLSClusterTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        files = pki()
        flags = [f"--ssl_cert_file={files.server_cert}", f"--ssl_key_file={files.server_key}",
                 f"--ssl_ca_file={files.ca_file}", "--ssl_require_cert=true"]
        self.cluster = ProcessCluster(self, agents=1, master_args=flags, agent_args=flags)
        self.https = ssl.create_default_context(cafile=files.ca_file)
        self.https.load_cert_chain(files.client_cert, files.client_key)
        # The test process is a client too (its PB driver): it trusts the CA and presents a client certificate.
        for name, value in {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CA_FILE": files.ca_file,
                            "LIBPROCESS_SSL_CERT_FILE": files.client_cert,
                            "LIBPROCESS_SSL_KEY_FILE": files.client_key}.items():
            self.addCleanup(os.environ.__setitem__, name, os.environ[name]) if name in os.environ else \
                self.addCleanup(os.environ.pop, name, None)
            os.environ[name] = value
        self.cluster.state = self.state
        yield self.cluster.start()

    def get(self, path: str, context: ssl.SSLContext | None, scheme: str = "https") -> defer.Deferred:
        url = f"{scheme}://{self.cluster.master_address}{path}"
        return threads.deferToThread(lambda: urllib.request.urlopen(url, context=context, timeout=10).read())

    def state(self) -> defer.Deferred:
        import json

        return self.get("/master/state", self.https).addCallback(json.loads)

    @defer.inlineCallbacks
    def test_tasks_run_over_mutual_tls(self):
        """A framework and the agent reach the master over mutual TLS, and executors reach the agent."""
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("secure", "echo over tls")]
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="root", name="tls"),
                                      self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        yield wait_for(lambda: scheduler.states("secure")[-1:] == [T.FINISHED], 60, what="the task over TLS")

    @defer.inlineCallbacks
    def test_plain_and_certificateless_clients_are_refused(self):
        """Plain HTTP and HTTPS without a client certificate get nowhere, and the master keeps serving."""
        with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
            yield self.get("/master/health", None, scheme="http")
        anonymous = ssl.create_default_context(cafile=pki().ca_file)
        with self.assertRaises((urllib.error.URLError, ssl.SSLError, ConnectionError, OSError)):
            yield self.get("/master/health", anonymous)
        body = yield self.get("/master/health", self.https)
        self.assertEqual(body, b"")
