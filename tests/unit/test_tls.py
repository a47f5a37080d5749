"""TLS settings: the LIBPROCESS_SSL_* environment, the --ssl_* flags, validation, and what they produce.

No sockets: the contexts are built and inspected; the handshakes themselves are in
``tests/integration/test_tls.py``.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import ssl
import sys
import tempfile
from typing import Any
from unittest import mock

import attrs
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet import ssl as tssl
from twisted.internet._sslverify import ClientTLSOptions
from twisted.trial import unittest

from mesostw import flags
from mesostw.auth.tls import FLAGS, TLSConfig, TLSConfigError, env_prefix, tls_from
from mesostw.cli import http as cli_http
from mesostw.executor import command
from tests.helpers.tls import pki


def options(argv: list[str], environ: dict[str, str] | None = None) -> flags.Config:
    """Parse ``argv`` as a daemon whose flags are the TLS ones would."""
    parser = flags.options_for(FLAGS, "test", environ=environ or {})()
    parser.parseOptions(argv)
    return parser.config


class EnvironmentTests(unittest.TestCase):
    def setUp(self) -> None:
        self.pki = pki()

    def test_disabled_by_default(self) -> None:
        """Without any variable TLS is off, and nothing is checked."""
        self.assertEqual(tls_from(None, {}), TLSConfig())
        self.assertFalse(tls_from(None, {"LIBPROCESS_SSL_CERT_FILE": "/nonexistent"}).enabled)

    def test_reads_every_variable(self) -> None:
        """Each LIBPROCESS_SSL_* variable lands in its field."""
        tls = tls_from(None, self.pki.environ(LIBPROCESS_SSL_CA_DIR=self.pki.directory,
                                              LIBPROCESS_SSL_VERIFY_CERT="false", LIBPROCESS_SSL_REQUIRE_CERT="1",
                                              LIBPROCESS_SSL_VERIFY_DEPTH="2",
                                              LIBPROCESS_SSL_CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256"))
        self.assertEqual(tls, TLSConfig(enabled=True, cert_file=self.pki.server_cert, key_file=self.pki.server_key,
                                        ca_file=self.pki.ca_file, ca_dir=self.pki.directory, verify_cert=False,
                                        require_cert=True, verify_depth=2,
                                        ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))

    def test_enabled_accepts_true_and_1(self) -> None:
        """LIBPROCESS_SSL_ENABLED takes true or 1 (any case), and false or 0."""
        for value, expected in (("true", True), ("1", True), ("TRUE", True), ("false", False), ("0", False)):
            self.assertEqual(tls_from(None, self.pki.environ(LIBPROCESS_SSL_ENABLED=value)).enabled, expected)

    def test_pre_1_0_prefix(self) -> None:
        """A configuration with SSL_ENABLED (and no LIBPROCESS_SSL_ENABLED) is read with the old SSL_ prefix."""
        old = {"SSL_" + name[len("LIBPROCESS_SSL_"):]: value for name, value in self.pki.environ().items()}
        self.assertEqual(tls_from(None, old), tls_from(None, self.pki.environ()))
        self.assertEqual(env_prefix(old), "SSL_")

    def test_openssl_own_variables_are_not_ours(self) -> None:
        """SSL_CERT_FILE and SSL_CERT_DIR (OpenSSL's system CA bundle) are ignored under LIBPROCESS_SSL_ENABLED."""
        environ = {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "SSL_CERT_DIR": "/etc/ssl/certs",
                   "LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CA_FILE": self.pki.ca_file}
        tls = tls_from(None, environ, server=False)
        self.assertIsNone(tls.cert_file)
        self.assertEqual(env_prefix(environ), "LIBPROCESS_SSL_")

    def test_newer_aliases(self) -> None:
        """VERIFY_SERVER_CERT and REQUIRE_CLIENT_CERT (Mesos 1.10's names) mean the same."""
        tls = tls_from(None, self.pki.environ(LIBPROCESS_SSL_VERIFY_SERVER_CERT="false",
                                              LIBPROCESS_SSL_REQUIRE_CLIENT_CERT="true"))
        self.assertEqual((tls.verify_cert, tls.require_cert), (False, True))

    def test_verify_defaults_to_whether_a_ca_is_given(self) -> None:
        """Clients verify the server by default when a CA is given, and not otherwise, unless told."""
        self.assertTrue(TLSConfig(enabled=True, ca_file="ca.pem").verifies_server)
        self.assertTrue(TLSConfig(enabled=True, ca_dir="/cas").verifies_server)
        self.assertFalse(TLSConfig(enabled=True).verifies_server)
        self.assertTrue(TLSConfig(enabled=True, verify_cert=True).verifies_server)
        self.assertFalse(TLSConfig(enabled=True, ca_file="ca.pem", verify_cert=False).verifies_server)

    def test_verify_depth_defaults_to_4(self) -> None:
        """LIBPROCESS_SSL_VERIFY_DEPTH is 4 unless set."""
        self.assertEqual(tls_from(None, self.pki.environ()).verify_depth, 4)

    def test_empty_variables_count_as_unset(self) -> None:
        """An empty variable is as good as none (as a shell's VAR= leaves it)."""
        tls = tls_from(None, self.pki.environ(LIBPROCESS_SSL_CA_FILE="", LIBPROCESS_SSL_VERIFY_CERT=""))
        self.assertEqual((tls.ca_file, tls.verify_cert), (None, None))


class FlagTests(unittest.TestCase):
    def setUp(self) -> None:
        self.pki = pki()

    def test_flag_records(self) -> None:
        """FLAGS declares the four Mesos flag names; require_cert is a boolean with no default."""
        self.assertEqual([f.name for f in FLAGS], ["ssl_cert_file", "ssl_key_file", "ssl_ca_file", "ssl_require_cert"])
        self.assertTrue(all(isinstance(f, flags.Flag) for f in FLAGS))
        self.assertEqual(options([]).rendered()["ssl_require_cert"], "")
        self.assertTrue(options(["--ssl_require_cert"]).ssl_require_cert)
        self.assertFalse(options(["--no-ssl_require_cert"]).ssl_require_cert)

    def test_cert_and_key_flags_enable_tls(self) -> None:
        """--ssl_cert_file and --ssl_key_file turn TLS on without any variable."""
        config = options([f"--ssl_cert_file={self.pki.server_cert}", f"--ssl_key_file={self.pki.server_key}"])
        tls = tls_from(config, {})
        self.assertEqual((tls.enabled, tls.cert_file, tls.key_file),
                         (True, self.pki.server_cert, self.pki.server_key))

    def test_flags_win_over_the_environment(self) -> None:
        """Each flag overrides its variable; variables without a flag still count."""
        environ = self.pki.environ(LIBPROCESS_SSL_CERT_FILE=self.pki.client_cert,
                                   LIBPROCESS_SSL_KEY_FILE=self.pki.client_key,
                                   LIBPROCESS_SSL_CA_FILE=self.pki.other_ca_file,
                                   LIBPROCESS_SSL_REQUIRE_CERT="true", LIBPROCESS_SSL_VERIFY_DEPTH="7")
        config = options([f"--ssl_cert_file={self.pki.server_cert}", f"--ssl_key_file={self.pki.server_key}",
                          f"--ssl_ca_file={self.pki.ca_file}", "--ssl_require_cert=false"])
        tls = tls_from(config, environ)
        self.assertEqual(tls, TLSConfig(enabled=True, cert_file=self.pki.server_cert, key_file=self.pki.server_key,
                                        ca_file=self.pki.ca_file, require_cert=False, verify_depth=7))

    def test_mesos_prefixed_flag_variables(self) -> None:
        """As every flag, --ssl_cert_file may come from MESOS_SSL_CERT_FILE, and then beats LIBPROCESS_SSL_*."""
        config = options([], {"MESOS_SSL_CERT_FILE": self.pki.server_cert, "MESOS_SSL_KEY_FILE": self.pki.server_key})
        tls = tls_from(config, {"LIBPROCESS_SSL_CERT_FILE": self.pki.client_cert})
        self.assertEqual((tls.enabled, tls.cert_file), (True, self.pki.server_cert))

    def test_config_without_tls_flags(self) -> None:
        """A config object without the TLS flags (another daemon's) leaves the environment alone."""
        self.assertEqual(tls_from(object(), self.pki.environ()), tls_from(None, self.pki.environ()))

    def test_half_an_identity_is_an_error_not_plain_text(self) -> None:
        """A certificate flag without the key (or the key without the certificate) turns TLS on and is refused
        for the missing half, rather than leaving the daemon silently without TLS."""
        for argv, missing in (([f"--ssl_cert_file={self.pki.server_cert}"], "no private key"),
                              ([f"--ssl_key_file={self.pki.server_key}"], "no certificate")):
            error = self.assertRaises(TLSConfigError, tls_from, options(argv), {})
            self.assertTrue(any(missing in problem for problem in error.problems), error.problems)

    def test_an_empty_flag_leaves_the_variable(self) -> None:
        """A flag given empty counts as not given: the CA of the environment stays, and with it verification."""
        config = options(["--ssl_ca_file="])
        tls = tls_from(config, self.pki.environ())
        self.assertEqual((tls.ca_file, tls.verifies_server), (self.pki.ca_file, True))

    def test_daemons_need_an_identity_by_default(self) -> None:
        """Without saying otherwise, the settings are a server's: TLS on without certificate is refused."""
        self.assertRaises(TLSConfigError, tls_from, None, {"LIBPROCESS_SSL_ENABLED": "true",
                                                           "LIBPROCESS_SSL_CA_FILE": self.pki.ca_file})
        error = self.assertRaises(TLSConfigError, TLSConfig(enabled=True, ca_file=self.pki.ca_file).check)
        self.assertTrue(any("no certificate" in problem for problem in error.problems))
        client = TLSConfig(enabled=True, ca_file=self.pki.ca_file)
        self.assertIs(client.check(server=False), client)

    def test_both_prefixes_set(self) -> None:
        """With LIBPROCESS_SSL_ENABLED set, the pre-1.0 SSL_* variables are never read, even if SSL_ENABLED is set."""
        self.assertEqual(env_prefix({"LIBPROCESS_SSL_ENABLED": "true", "SSL_ENABLED": "true"}), "LIBPROCESS_SSL_")
        self.assertEqual(env_prefix({"LIBPROCESS_SSL_ENABLED": "false", "SSL_ENABLED": "true"}), "LIBPROCESS_SSL_")
        self.assertEqual(env_prefix({"SSL_ENABLED": "true"}), "SSL_")
        self.assertEqual(env_prefix({}), "LIBPROCESS_SSL_")
        tls = tls_from(None, {**self.pki.environ(), "SSL_ENABLED": "true", "SSL_CA_FILE": self.pki.other_ca_file})
        self.assertEqual(tls.ca_file, self.pki.ca_file)

    def test_ca_flag_alone_does_not_enable_tls(self) -> None:
        """--ssl_ca_file sets the CA but does not turn TLS on by itself."""
        self.assertFalse(tls_from(options([f"--ssl_ca_file={self.pki.ca_file}"]), {}).enabled)


class ValidationTests(unittest.TestCase):
    def setUp(self) -> None:
        self.pki = pki()
        self.dir = tempfile.mkdtemp(prefix="mesostw-tls-unit-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def problems(self, environ: dict[str, str], server: bool = True) -> list[str]:
        with self.assertRaises(TLSConfigError) as caught:
            tls_from(None, environ, server=server)
        self.assertTrue(str(caught.exception).startswith("invalid TLS settings:\n  "))
        return caught.exception.problems

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_a_valid_server(self) -> None:
        """The generated server identity with its CA passes, with or without require_cert."""
        self.assertEqual(tls_from(None, self.pki.environ()).problems(), [])
        self.assertTrue(tls_from(None, self.pki.environ(LIBPROCESS_SSL_REQUIRE_CERT="true")).require_cert)

    def test_every_problem_at_once(self) -> None:
        """Missing files, a key for another certificate, require_cert without a CA: all reported together."""
        problems = self.problems({"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": self.pki.server_cert,
                                  "LIBPROCESS_SSL_KEY_FILE": self.pki.client_key,
                                  "LIBPROCESS_SSL_REQUIRE_CERT": "true", "LIBPROCESS_SSL_VERIFY_DEPTH": "deep",
                                  "LIBPROCESS_SSL_VERIFY_CERT": "maybe"})
        self.assertEqual(len(problems), 4, problems)
        self.assertEqual(problems[0], "LIBPROCESS_SSL_VERIFY_CERT=maybe: expected true or false")
        self.assertEqual(problems[1], "LIBPROCESS_SSL_VERIFY_DEPTH=deep: expected an integer")
        self.assertEqual(problems[2], f"the private key in {self.pki.client_key} does not belong to the "
                                      f"certificate in {self.pki.server_cert}")
        self.assertIn("LIBPROCESS_SSL_REQUIRE_CERT (--ssl_require_cert) needs a CA", problems[3])

    def test_missing_files(self) -> None:
        """Unreadable certificate, key and CA files are each named with the reason."""
        problems = self.problems({"LIBPROCESS_SSL_ENABLED": "1", "LIBPROCESS_SSL_CERT_FILE": "/nonexistent/c.pem",
                                  "LIBPROCESS_SSL_KEY_FILE": "/nonexistent/k.pem",
                                  "LIBPROCESS_SSL_CA_FILE": "/nonexistent/ca.pem",
                                  "LIBPROCESS_SSL_CA_DIR": "/nonexistent/cas"})
        self.assertEqual(problems, [
            "cannot read the certificate file /nonexistent/c.pem: No such file or directory",
            "cannot read the key file /nonexistent/k.pem: No such file or directory",
            "cannot read the CA file /nonexistent/ca.pem: No such file or directory",
            "cannot read the CA directory /nonexistent/cas: No such file or directory",
        ])

    def test_server_needs_certificate_and_key(self) -> None:
        """A daemon with TLS on but no identity is told which variables or flags to set."""
        self.assertEqual(self.problems({"LIBPROCESS_SSL_ENABLED": "true"}), [
            "no certificate: set LIBPROCESS_SSL_CERT_FILE or --ssl_cert_file",
            "no private key: set LIBPROCESS_SSL_KEY_FILE or --ssl_key_file",
        ])

    def test_client_identity_is_optional_but_whole(self) -> None:
        """A client needs no certificate, but a certificate without its key is an error."""
        client = tls_from(None, {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CA_FILE": self.pki.ca_file},
                          server=False)
        self.assertTrue(client.enabled)
        problems = self.problems({"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": self.pki.client_cert},
                                 server=False)
        self.assertEqual(problems, ["no private key: set LIBPROCESS_SSL_KEY_FILE or --ssl_key_file"])

    def test_files_that_are_not_pem(self) -> None:
        """A certificate, key or CA file without PEM content is reported as such."""
        junk = self.write("junk.txt", b"not a certificate\n")
        problems = self.problems({"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": junk,
                                  "LIBPROCESS_SSL_KEY_FILE": junk, "LIBPROCESS_SSL_CA_FILE": junk})
        self.assertEqual(problems, [f"the certificate file {junk} holds no PEM certificate",
                                    f"the key file {junk} holds no PEM private key",
                                    f"the CA file {junk} holds no PEM certificate"])

    def test_encrypted_key(self) -> None:
        """An encrypted private key is refused with a message saying so."""
        with open(self.pki.server_key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        encrypted = self.write("encrypted.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
        problems = self.problems(self.pki.environ(LIBPROCESS_SSL_KEY_FILE=encrypted))
        self.assertEqual(problems, [f"the private key in {encrypted} is encrypted; give an unencrypted key"])

    def test_ca_directory(self) -> None:
        """A CA directory is read file by file (hash links counted once); one without a certificate is an error."""
        good = os.path.join(self.dir, "good")
        os.mkdir(good)
        shutil.copy(self.pki.ca_file, os.path.join(good, "0a1b2c3d.0"))
        os.symlink("0a1b2c3d.0", os.path.join(good, "ca.pem"))
        self.write("good/README", b"certificates for mesostw\n")
        self.assertEqual(len(TLSConfig(enabled=True, ca_dir=good)._ca_pems([])), 1)
        empty = os.path.join(self.dir, "empty")
        os.mkdir(empty)
        problems = self.problems(self.pki.environ(LIBPROCESS_SSL_CA_DIR=empty))
        self.assertEqual(problems, [f"the CA directory {empty} holds no PEM certificate"])
        self.write("empty/notes", b"nothing here\n")
        self.assertEqual(self.problems(self.pki.environ(LIBPROCESS_SSL_CA_DIR=empty)), problems)

    def test_unknown_ciphers_and_negative_depth(self) -> None:
        """A cipher string selecting nothing and a negative depth are reported."""
        problems = self.problems(self.pki.environ(LIBPROCESS_SSL_CIPHERS="NO-SUCH-CIPHER",
                                                  LIBPROCESS_SSL_VERIFY_DEPTH="-1"))
        self.assertEqual(problems, ["LIBPROCESS_SSL_VERIFY_DEPTH must not be negative, not -1",
                                    "LIBPROCESS_SSL_CIPHERS=NO-SUCH-CIPHER selects no cipher this OpenSSL knows"])

    def test_downgrade_is_refused(self) -> None:
        """LIBPROCESS_SSL_SUPPORT_DOWNGRADE=true (plain and TLS on one port) is refused, not ignored."""
        problems = self.problems(self.pki.environ(LIBPROCESS_SSL_SUPPORT_DOWNGRADE="true"))
        self.assertEqual(len(problems), 1)
        self.assertTrue(problems[0].startswith("LIBPROCESS_SSL_SUPPORT_DOWNGRADE: plain and TLS"))

    def test_flag_problems_name_the_files(self) -> None:
        """A key flag for another certificate is caught like the variables."""
        config = options([f"--ssl_cert_file={self.pki.server_cert}", f"--ssl_key_file={self.pki.client_key}"])
        with self.assertRaises(TLSConfigError) as caught:
            tls_from(config, {})
        self.assertIn("does not belong to the certificate", caught.exception.problems[0])


class ContextTests(unittest.TestCase):
    def setUp(self) -> None:
        self.pki = pki()

    def test_server_context(self) -> None:
        """The server context is TLS 1.2+ and asks for no client certificate by default."""
        options = self.pki.server().server_context()
        self.assertIsInstance(options, tssl.CertificateOptions)
        self.assertFalse(options.verify)
        self.assertEqual(options.verifyDepth, 4)
        self.assertTrue(options._options & SSL.OP_NO_TLSv1 and options._options & SSL.OP_NO_TLSv1_1)
        options.getContext()

    def test_server_context_requiring_certificates(self) -> None:
        """With require_cert the server verifies clients against the CA and refuses those without."""
        options = self.pki.server(require_cert=True).server_context()
        self.assertTrue(options.verify)
        self.assertTrue(options.requireCertificate)
        self.assertEqual(len(options.caCerts), 1)
        options.getContext()

    def test_client_options_verify(self) -> None:
        """A verifying client gets Twisted's ClientTLSOptions for the host name it dials."""
        creator = self.pki.client(with_certificate=True).client_options("127.0.0.1")
        self.assertIsInstance(creator, ClientTLSOptions)
        self.assertEqual(creator._hostname, "127.0.0.1")

    def test_a_configured_ca_gone_unreadable_never_means_the_platform_cas(self) -> None:
        """A CA file or directory configured but unreadable (or empty) when a client connects refuses with
        TLSConfigError on every client path, instead of falling back to the platform's trust store."""
        import os
        import tempfile

        empty_dir = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, empty_dir)
        for config in (TLSConfig(enabled=True, ca_file=os.path.join(empty_dir, "gone.pem")),
                       TLSConfig(enabled=True, ca_dir=empty_dir)):
            self.assertRaises(TLSConfigError, config.ssl_context)
            self.assertRaises(TLSConfigError, config.client_options, "127.0.0.1")

    def test_client_options_without_verification(self) -> None:
        """With verify_cert off the client gets plain CertificateOptions that check nothing."""
        creator = TLSConfig(enabled=True, ca_file=self.pki.ca_file, verify_cert=False).client_options("h")
        self.assertIsInstance(creator, tssl.CertificateOptions)
        self.assertFalse(creator.verify)

    def test_config_is_a_creator_factory(self) -> None:
        """Calling a TLSConfig with a host name gives its client options (what Connector takes)."""
        self.assertEqual(type(self.pki.client()("localhost")), type(self.pki.client().client_options("localhost")))

    def test_ssl_context(self) -> None:
        """The stdlib context checks chain and host name when verifying, and nothing when not."""
        context = self.pki.client(with_certificate=True).ssl_context()
        self.assertEqual((context.verify_mode, context.check_hostname), (ssl.CERT_REQUIRED, True))
        self.assertEqual(context.minimum_version, ssl.TLSVersion.TLSv1_2)
        self.assertEqual(len(context.get_ca_certs()), 1)
        loose = TLSConfig(enabled=True, verify_cert=False).ssl_context()
        self.assertEqual((loose.verify_mode, loose.check_hostname), (ssl.CERT_NONE, False))

    def test_environment_for_executors(self) -> None:
        """environment() gives absolute paths and explicit booleans; disabled, just ENABLED=false."""
        relative = os.path.relpath(self.pki.ca_file)
        env = TLSConfig(enabled=True, cert_file=self.pki.server_cert, key_file=self.pki.server_key,
                        ca_file=relative, ciphers="HIGH").environment()
        self.assertEqual(env, {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_VERIFY_CERT": "true",
                               "LIBPROCESS_SSL_REQUIRE_CERT": "false", "LIBPROCESS_SSL_VERIFY_DEPTH": "4",
                               "LIBPROCESS_SSL_CERT_FILE": self.pki.server_cert,
                               "LIBPROCESS_SSL_KEY_FILE": self.pki.server_key,
                               "LIBPROCESS_SSL_CA_FILE": os.path.abspath(relative), "LIBPROCESS_SSL_CIPHERS": "HIGH"})
        self.assertEqual(TLSConfig().environment(), {"LIBPROCESS_SSL_ENABLED": "false"})

    def test_environment_passes_the_ca_directory(self) -> None:
        """A master trusting a CA directory gives executors LIBPROCESS_SSL_CA_DIR (absolute): without it an
        executor verifying the agent would trust the platform's CAs instead of the cluster's."""
        relative = os.path.relpath(os.path.dirname(self.pki.ca_file))
        env = TLSConfig(enabled=True, cert_file=self.pki.server_cert, key_file=self.pki.server_key,
                        ca_dir=relative).environment()
        self.assertEqual(env["LIBPROCESS_SSL_CA_DIR"], os.path.abspath(relative))
        self.assertNotIn("LIBPROCESS_SSL_CA_FILE", env)
        self.assertEqual(tls_from(None, env).ca_dir, os.path.abspath(relative))

    def test_environment_round_trips(self) -> None:
        """What environment() gives, tls_from reads back as the same settings."""
        tls = self.pki.server(require_cert=True, verify_depth=3)
        self.assertEqual(tls_from(None, tls.environment()), attrs.evolve(tls, verify_cert=True))


class CommandExecutorContextTests(unittest.TestCase):
    """The command executor reads the same variables with the standard library alone."""

    def setUp(self) -> None:
        self.pki = pki()

    def test_off_unless_enabled(self) -> None:
        """No LIBPROCESS_SSL_ENABLED (or false), no TLS."""
        self.assertIsNone(command.tls_context({}))
        self.assertIsNone(command.tls_context({"LIBPROCESS_SSL_ENABLED": "false", "SSL_ENABLED": "true"}))

    def test_same_checks_as_the_config(self) -> None:
        """Given environment(), its context verifies like TLSConfig.ssl_context()."""
        context = command.tls_context(self.pki.client(with_certificate=True).environment())
        assert context is not None
        self.assertEqual((context.verify_mode, context.check_hostname), (ssl.CERT_REQUIRED, True))
        self.assertEqual(context.minimum_version, ssl.TLSVersion.TLSv1_2)
        self.assertEqual(len(context.get_ca_certs()), 1)

    def test_verification_off(self) -> None:
        """LIBPROCESS_SSL_VERIFY_CERT=false, or no CA at all, checks nothing."""
        context = command.tls_context({"LIBPROCESS_SSL_ENABLED": "1"})
        assert context is not None
        self.assertEqual(context.verify_mode, ssl.CERT_NONE)

    def test_ca_directory_skips_other_files(self) -> None:
        """Files in the CA directory that are not certificates are skipped."""
        directory = tempfile.mkdtemp(prefix="mesostw-tls-unit-")
        self.addCleanup(shutil.rmtree, directory, True)
        shutil.copy(self.pki.ca_file, directory)
        with open(os.path.join(directory, "README"), "w") as f:
            f.write("not a certificate\n")
        context = command.tls_context({"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CA_DIR": directory})
        assert context is not None
        self.assertEqual(len(context.get_ca_certs()), 1)

    def test_executor_takes_tls_from_its_environment(self) -> None:
        """A CommandExecutor started with the TLS variables connects through TLS; without them, plainly."""
        base = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:5051", "MESOS_FRAMEWORK_ID": "F", "MESOS_EXECUTOR_ID": "E"}
        self.assertIsNone(command.CommandExecutor(base).tls)
        with_tls = command.CommandExecutor({**base, **self.pki.client().environment()})
        self.assertIsInstance(with_tls.tls, ssl.SSLContext)

    def test_main_reports_bad_tls_settings(self) -> None:
        """main() exits 2 with a message when the TLS files cannot be loaded, instead of a traceback."""
        environ = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:5051", "MESOS_FRAMEWORK_ID": "F", "MESOS_EXECUTOR_ID": "E",
                   "LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CA_FILE": "/nonexistent.pem"}
        stderr = io.StringIO()
        with mock.patch.dict(os.environ, environ), mock.patch.object(sys, "stderr", stderr), \
                mock.patch.object(signal, "signal"):
            self.assertEqual(command.main(), 2)
        self.assertIn("cannot set up TLS to the agent", stderr.getvalue())

    def test_unreadable_files_raise(self) -> None:
        """A missing CA file fails the executor's start (main() reports it), not its first connection."""
        self.assertRaises(OSError, command.tls_context,
                          {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CA_FILE": "/nonexistent.pem"})


class CLITests(unittest.TestCase):
    def test_scheme_follows_the_environment(self) -> None:
        """Without a scheme the master is https:// when LIBPROCESS_SSL_ENABLED (or SSL_ENABLED) is true."""
        self.assertEqual(cli_http.parse_master("m1:5050", environ={"LIBPROCESS_SSL_ENABLED": "true"})[0], "https")
        self.assertEqual(cli_http.parse_master("m1:5050", environ={"SSL_ENABLED": "1"})[0], "https")
        self.assertEqual(cli_http.parse_master("m1:5050", environ={"LIBPROCESS_SSL_ENABLED": "false"})[0], "http")
        self.assertEqual(cli_http.parse_master("http://m1:5050", environ={"LIBPROCESS_SSL_ENABLED": "1"})[0], "http")
        self.assertEqual(cli_http.parse_master("https://m1:5050", environ={})[0], "https")

    def test_tls_failures_read_well(self) -> None:
        """Certificate verification failures name OpenSSL's reason in the one-line error."""
        error = ssl.SSLCertVerificationError(1, "certificate verify failed")
        error.verify_message = "unable to get local issuer certificate"
        self.assertEqual(cli_http._reason(error),
                         "TLS certificate verification failed: unable to get local issuer certificate")


def handshake(server: SSL.Context, client: SSL.Context) -> tuple[SSL.Connection, SSL.Connection]:
    """A TLS handshake between two contexts in memory; raises the SSL.Error either side ends with."""
    server_connection, client_connection = SSL.Connection(server, None), SSL.Connection(client, None)
    server_connection.set_accept_state()
    client_connection.set_connect_state()
    for _ in range(20):
        done = 0
        for connection in (client_connection, server_connection):
            try:
                connection.do_handshake()
                done += 1
            except SSL.WantReadError:
                pass
        for source, target in ((client_connection, server_connection), (server_connection, client_connection)):
            try:
                target.bio_write(source.bio_read(65536))
            except SSL.WantReadError:
                pass
        if done == 2:
            return server_connection, client_connection
    raise AssertionError("the handshake never ended")


class HandshakeTests(unittest.TestCase):
    """The contexts the daemons make, meeting clients in an in-memory handshake."""

    def setUp(self) -> None:
        self.pki = pki()

    def client_context(self, alpn: list[bytes] | None = None, identity: bool = False) -> SSL.Context:
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.load_verify_locations(self.pki.ca_file)
        if identity:
            context.use_certificate_file(self.pki.client_cert)
            context.use_privatekey_file(self.pki.client_key)
        if alpn is not None:
            context.set_alpn_protos(alpn)
        return context

    def test_alpn_is_answered_or_ignored(self) -> None:
        """A client offering http/1.1 among others gets it; one offering only protocols the daemon does not
        speak still completes the handshake, with none chosen; one offering nothing too."""
        server = self.pki.server().server_context().getContext()
        for offered, chosen in (([b"h2", b"http/1.1"], b"http/1.1"), ([b"h2"], b""), (None, b"")):
            _, client = handshake(server, self.client_context(offered))
            self.assertEqual(client.get_alpn_proto_negotiated(), chosen, offered)

    def test_the_ciphers_setting_applies(self) -> None:
        """LIBPROCESS_SSL_CIPHERS restricts what the daemon's port negotiates below TLS 1.3."""
        server = self.pki.server(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256").server_context().getContext()
        client = self.client_context()
        client.set_max_proto_version(SSL.TLS1_2_VERSION)
        client.set_cipher_list(b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256")
        _, connection = handshake(server, client)
        self.assertEqual(connection.get_cipher_name(), "ECDHE-ECDSA-AES128-GCM-SHA256")
        only_other = self.client_context()
        only_other.set_max_proto_version(SSL.TLS1_2_VERSION)
        only_other.set_cipher_list(b"ECDHE-ECDSA-AES256-GCM-SHA384")
        self.assertRaises(SSL.Error, handshake, server, only_other)
        context = self.pki.client(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256").ssl_context()
        self.assertEqual({c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"},
                         {"ECDHE-ECDSA-AES128-GCM-SHA256"})

    def test_old_protocol_versions_are_refused(self) -> None:
        """A client that speaks no more than TLS 1.1 is refused by the daemon's port."""
        client = self.client_context()
        client.set_min_proto_version(0)
        client.set_max_proto_version(SSL.TLS1_1_VERSION)
        self.assertRaises(SSL.Error, handshake, self.pki.server().server_context().getContext(), client)

    def test_clients_present_their_certificate(self) -> None:
        """A PB client's options present its certificate to a daemon that requires one; without a certificate
        the daemon refuses it."""
        from twisted.internet.interfaces import IHandshakeListener
        from twisted.internet.protocol import Factory, Protocol
        from twisted.protocols.tls import TLSMemoryBIOFactory
        from twisted.test.iosim import FakeTransport, connect
        from zope.interface import implementer

        @implementer(IHandshakeListener)
        class Up(Protocol):
            def handshakeCompleted(self) -> None:
                self.factory.handshook = True

        def connected(client_tls: TLSConfig) -> tuple[bool, Any]:
            """Whether the daemon completes its handshake with a client of ``client_tls`` (it requires certificates)."""
            daemon = Factory.forProtocol(Up)
            daemon.handshook = False
            server = TLSMemoryBIOFactory(self.pki.server(require_cert=True).server_context(), False,
                                         daemon).buildProtocol(None)
            creator = client_tls.client_options("127.0.0.1")
            client = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(Protocol)).buildProtocol(None)
            connect(server, FakeTransport(server, True), client, FakeTransport(client, False))
            return daemon.handshook, creator

        self.assertTrue(connected(self.pki.client(with_certificate=True))[0])
        self.assertFalse(connected(self.pki.client())[0])
        self.flushLoggedErrors()
