"""Issue 12, item 7: a TLS master answers every client's handshake, ALPN offered or not.

Clients that offer ALPN (curl by default, ``requests``/urllib3, browsers) used to be refused with
``tlsv1 alert internal error``; only clients without ALPN got through. Each client here is the real
one, against a real master on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

import requests
from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.helpers.processes import Daemon, free_port, wait_for
from tests.helpers.tls import pki

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def handshake(port: int, ca_file: str, protocols: list[str] | None) -> tuple[str | None, bytes]:
    """(the protocol the server selected, the first bytes of its answer to GET /version) with a
    stdlib client offering ``protocols`` over ALPN (None: no ALPN at all)."""
    context = ssl.create_default_context(cafile=ca_file)
    if protocols is not None:
        context.set_alpn_protocols(protocols)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.selected_alpn_protocol(), sock.recv(4096)


class ALPNTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.files = pki()
        self.base = tempfile.mkdtemp(prefix="mesostw-alpn-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}/version"
        self.master = Daemon("mesos-master", [f"--port={self.port}", f"--ssl_cert_file={self.files.server_cert}",
                                              f"--ssl_key_file={self.files.server_key}",
                                              f"--ssl_ca_file={self.files.ca_file}"],
                             os.path.join(self.base, "master.log")).start()
        self.addCleanup(self.master.stop)
        yield wait_for(lambda: threads.deferToThread(self._up), 30, what="the TLS master")

    def _up(self) -> bool:
        try:
            return handshake(self.port, self.files.ca_file, None)[1].startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    @defer.inlineCallbacks
    def test_curl_with_alpn(self):
        """curl, which offers h2 and http/1.1 by default, gets its answer over HTTP/1.1."""
        result = yield threads.deferToThread(subprocess.run, [
            "curl", "-sS", "--http2", "--cacert", self.files.ca_file, "-w", "\\n%{http_code} %{http_version}",
            self.url], capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        body, _, status = result.stdout.rpartition("\n")
        self.assertEqual(status, "200 1.1")
        self.assertIn("version", json.loads(body))

    @defer.inlineCallbacks
    def test_requests(self):
        """Python's requests (urllib3 offers ALPN http/1.1) verifies the master and gets its answer."""
        response = yield threads.deferToThread(requests.get, self.url, verify=self.files.ca_file, timeout=10)
        self.assertEqual(response.status_code, 200)
        self.assertIn("version", response.json())

    @defer.inlineCallbacks
    def test_alpn_answers(self):
        """http/1.1 is selected when offered; a client offering only protocols the master does not
        speak gets no protocol, not a failed handshake; a client without ALPN is served as before."""
        for offered, selected in ((["h2", "http/1.1"], "http/1.1"), (["http/1.1"], "http/1.1"), (["h2"], None),
                                  (None, None)):
            protocol, answer = yield threads.deferToThread(handshake, self.port, self.files.ca_file, offered)
            self.assertEqual(protocol, selected, offered)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), (offered, answer[:80]))

    @defer.inlineCallbacks
    def test_headless_chromium(self):
        """Headless Chromium (its ALPN offers h2 and http/1.1) loads a page from the TLS master."""
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium is installed by the test setup (tools/install-chromium.sh)")
        profile = tempfile.mkdtemp(prefix="mesostw-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        # The throwaway CA is not in Chromium's trust store; the handshake (ALPN included) is what is tested.
        argv = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--ignore-certificate-errors",
                "--dump-dom", self.url]
        result = yield threads.deferToThread(subprocess.run, argv, capture_output=True, text=True, timeout=90)
        self.assertIn('"version"', result.stdout, result.stderr[-2000:])
