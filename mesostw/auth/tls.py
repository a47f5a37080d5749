"""TLS as libprocess does it: one set of ``LIBPROCESS_SSL_*`` settings for every socket of a process.

Mesos reads its TLS settings from the environment (``LIBPROCESS_SSL_ENABLED``,
``..._CERT_FILE``, ``..._KEY_FILE``, ``..._CA_FILE`` ...; ``SSL_*`` before 1.0),
and every process is server and client with them. :func:`tls_from` reads the
same variables, lets the daemon flags of :data:`FLAGS` override them, and checks
the files, reporting every problem at once. The :class:`TLSConfig` it returns
hands each side what it needs: a server context for the one listening port (HTTP
and PB both inside TLS), client connection creators for PB connections, a stdlib
``ssl.SSLContext`` for the blocking CLI, and the variables an agent gives its
executors so that they reach it over TLS too.

TLS 1.2 is the oldest version spoken. With TLS on, the port speaks TLS only:
``LIBPROCESS_SSL_SUPPORT_DOWNGRADE`` (plain and TLS on one port) is refused rather
than ignored. Keys must not be encrypted (libprocess cannot read encrypted keys either).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import Any

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from mesostw.flags import Flag, parse_bool

PREFIX = "LIBPROCESS_SSL_"
#: libprocess's pre-1.0 prefix, read only for a pre-1.0 configuration (see :func:`env_prefix`).
OLD_PREFIX = "SSL_"
DEFAULT_VERIFY_DEPTH = 4

FLAGS = (
    Flag("ssl_cert_file", None, "TLS certificate (PEM, may hold the chain) of this daemon; with --ssl_key_file "
         "it turns TLS on, overriding LIBPROCESS_SSL_CERT_FILE"),
    Flag("ssl_key_file", None, "Unencrypted private key (PEM) of --ssl_cert_file, overriding LIBPROCESS_SSL_KEY_FILE"),
    Flag("ssl_ca_file", None, "CA certificates (PEM) that peers' certificates must chain to, overriding "
         "LIBPROCESS_SSL_CA_FILE"),
    Flag("ssl_require_cert", None, "Refuse clients without a certificate signed by the CA (mutual TLS), overriding "
         "LIBPROCESS_SSL_REQUIRE_CERT", parse_bool, boolean=True),
)

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class TLSConfigError(ValueError):
    """The TLS settings cannot work; :attr:`problems` lists every reason."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid TLS settings:\n  " + "\n  ".join(problems))
        self.problems = problems


@attrs.frozen
class TLSConfig:
    """TLS settings, validated by :func:`tls_from` (or :meth:`check`); a disabled config is never used
    for sockets. The files are read when a context is made, so replaced certificates take effect on
    the next connection (clients) or restart (servers)."""

    enabled: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    ca_dir: str | None = None
    #: Whether clients check the server's certificate; None means "when a CA is given".
    verify_cert: bool | None = None
    require_cert: bool = False
    verify_depth: int = DEFAULT_VERIFY_DEPTH
    ciphers: str | None = None

    @property
    def verifies_server(self) -> bool:
        return self.verify_cert if self.verify_cert is not None else bool(self.ca_file or self.ca_dir)

    # -- validation ---------------------------------------------------------------

    def problems(self, server: bool = True) -> list[str]:
        """Everything wrong with these settings (none when disabled); ``server`` needs an identity."""
        if not self.enabled:
            return []
        out: list[str] = []
        if server or self.cert_file or self.key_file:
            if not self.cert_file:
                out.append("no certificate: set LIBPROCESS_SSL_CERT_FILE or --ssl_cert_file")
            if not self.key_file:
                out.append("no private key: set LIBPROCESS_SSL_KEY_FILE or --ssl_key_file")
        certificate = key = None
        if self.cert_file:
            data = _read(self.cert_file, "certificate file", out)
            if data is not None:
                certificate = _first_certificate(data, self.cert_file, out)
        if self.key_file:
            data = _read(self.key_file, "key file", out)
            if data is not None:
                key = _private_key(data, self.key_file, out)
        if certificate is not None and key is not None and _spki(key.public_key()) != _spki(certificate.public_key()):
            out.append(f"the private key in {self.key_file} does not belong to the certificate in {self.cert_file}")
        self._ca_pems(out)
        if self.require_cert and not (self.ca_file or self.ca_dir):
            out.append("LIBPROCESS_SSL_REQUIRE_CERT (--ssl_require_cert) needs a CA to check client certificates "
                       "against: set LIBPROCESS_SSL_CA_FILE (--ssl_ca_file) or LIBPROCESS_SSL_CA_DIR")
        if self.verify_depth < 0:
            out.append(f"LIBPROCESS_SSL_VERIFY_DEPTH must not be negative, not {self.verify_depth}")
        if self.ciphers:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).set_ciphers(self.ciphers)
            except ssl.SSLError:
                out.append(f"LIBPROCESS_SSL_CIPHERS={self.ciphers} selects no cipher this OpenSSL knows")
        return out

    def check(self, server: bool = True) -> TLSConfig:
        """These settings, or :class:`TLSConfigError` with every problem."""
        problems = self.problems(server)
        if problems:
            raise TLSConfigError(problems)
        return self

    # -- what the sockets need ------------------------------------------------------

    def server_context(self) -> Any:
        """A contextFactory for a listening port (``CertificateOptions``): TLS 1.2+, and with
        ``require_cert`` a client must present a certificate chaining to the CA."""
        from twisted.internet import ssl as tssl

        options = self._common_options()
        identity = self._identity()
        assert identity, "a server needs a certificate and a key"
        options.update(identity)
        if self.require_cert:
            options.update(verify=True, caCerts=[c.original for c in self._ca_certificates()],
                           requireCertificate=True)
        certificate_options = tssl.CertificateOptions(**options)
        # The context is made once and kept by the options: answer ALPN on it from now on.
        answer_alpn(certificate_options.getContext())
        return certificate_options

    def client_options(self, hostname: str) -> Any:
        """A client connection creator for ``wrapClientTLS`` to ``hostname`` (a name or an IP address).

        With ``verifies_server`` (the default when a CA is given) the server's certificate must
        chain to the CA (the system's trust store when only LIBPROCESS_SSL_VERIFY_CERT is set) and
        name ``hostname`` (DNS or IP SAN). Otherwise this returns a ``CertificateOptions`` that
        accepts *any* server certificate: the link is encrypted but not authenticated, open to a
        man in the middle, as libprocess with LIBPROCESS_SSL_VERIFY_CERT=false. Either way the
        client presents its certificate, if it has one, for servers that require it.
        """
        from twisted.internet import ssl as tssl

        options = self._common_options()
        options.update(self._identity())
        if not self.verifies_server:
            return tssl.CertificateOptions(**options)
        authorities = self._ca_certificates()
        trust = tssl.trustRootFromCertificates(authorities) if authorities else None
        return tssl.optionsForClientTLS(hostname, trustRoot=trust, extraCertificateOptions=options)

    def __call__(self, hostname: str) -> Any:
        """Same as :meth:`client_options`, so the config itself can be given where a creator factory is taken."""
        return self.client_options(hostname)

    def ssl_context(self) -> ssl.SSLContext:
        """A stdlib client context for blocking clients, with the same checks as :meth:`client_options`
        (except the chain depth, which the stdlib does not expose)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verifies_server:
            authorities = self._authorities()
            if authorities:
                context.load_verify_locations(cadata=b"\n".join(authorities).decode("ascii"))
            else:
                context.load_default_certs()
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.ciphers:
            context.set_ciphers(self.ciphers)
        return context

    def environment(self) -> dict[str, str]:
        """The ``LIBPROCESS_SSL_*`` variables that give an executor these settings (absolute paths, as
        executors run in their sandbox); with TLS off, just ``LIBPROCESS_SSL_ENABLED=false``."""
        if not self.enabled:
            return {"LIBPROCESS_SSL_ENABLED": "false"}
        env = {"LIBPROCESS_SSL_ENABLED": "true",
               "LIBPROCESS_SSL_VERIFY_CERT": "true" if self.verifies_server else "false",
               "LIBPROCESS_SSL_REQUIRE_CERT": "true" if self.require_cert else "false",
               "LIBPROCESS_SSL_VERIFY_DEPTH": str(self.verify_depth)}
        for name, path in (("CERT_FILE", self.cert_file), ("KEY_FILE", self.key_file), ("CA_FILE", self.ca_file),
                           ("CA_DIR", self.ca_dir)):
            if path:
                env["LIBPROCESS_SSL_" + name] = os.path.abspath(path)
        if self.ciphers:
            env["LIBPROCESS_SSL_CIPHERS"] = self.ciphers
        return env

    # -- loading ----------------------------------------------------------------------

    def _common_options(self) -> dict[str, Any]:
        from twisted.internet import ssl as tssl

        options: dict[str, Any] = {"raiseMinimumTo": tssl.TLSVersion.TLSv1_2, "verifyDepth": self.verify_depth}
        if self.ciphers:
            options["acceptableCiphers"] = tssl.AcceptableCiphers.fromOpenSSLCipherString(self.ciphers)
        return options

    def _identity(self) -> dict[str, Any]:
        """``CertificateOptions`` arguments for the certificate, its chain and key (none without both files).

        They are ``cryptography`` objects, which pyOpenSSL takes without deprecation warnings."""
        if not (self.cert_file and self.key_file):
            return {}
        with open(self.cert_file, "rb") as f:
            certificates = [x509.load_pem_x509_certificate(pem) for pem in _PEM_CERTIFICATE.findall(f.read())]
        with open(self.key_file, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        return {"certificate": certificates[0], "privateKey": key, "extraCertChain": certificates[1:] or None}

    def _ca_certificates(self) -> list[Any]:
        from twisted.internet import ssl as tssl

        return [tssl.Certificate.loadPEM(pem) for pem in self._authorities()]

    def _authorities(self) -> list[bytes]:
        """The configured CAs' certificates, or :class:`TLSConfigError` when a CA is configured but cannot
        be read now (never an empty list that would mean "trust the platform's CAs" instead)."""
        problems: list[str] = []
        pems = self._ca_pems(problems)
        if (self.ca_file or self.ca_dir) and (problems or not pems):
            raise TLSConfigError(problems or ["the configured CA holds no certificate"])
        return pems

    def _ca_pems(self, problems: list[str]) -> list[bytes]:
        """Every PEM certificate of the CA file and of the files in the CA directory."""
        pems: list[bytes] = []
        if self.ca_file:
            data = _read(self.ca_file, "CA file", problems)
            if data is not None:
                found = _PEM_CERTIFICATE.findall(data)
                if not found:
                    problems.append(f"the CA file {self.ca_file} holds no PEM certificate")
                pems.extend(found)
        if self.ca_dir:
            try:
                names = sorted(os.listdir(self.ca_dir))
            except OSError as exc:
                problems.append(f"cannot read the CA directory {self.ca_dir}: {exc.strerror}")
                return pems
            found = []
            for name in names:
                path = os.path.join(self.ca_dir, name)
                if os.path.isfile(path):
                    data = _read(path, "CA file", problems)
                    found.extend(_PEM_CERTIFICATE.findall(data or b""))
            if not found:
                problems.append(f"the CA directory {self.ca_dir} holds no PEM certificate")
            pems.extend(found)
        # A c_rehash'd directory links each certificate under its hash: keep one of each.
        return list(dict.fromkeys(pems))


#: The one application protocol every port speaks inside TLS (PB and the executor stream are sniffed after it).
HTTP_1_1 = b"http/1.1"


def answer_alpn(context: Any) -> None:
    """Make a server context answer ALPN as a client would want: ``http/1.1`` when offered, else no
    protocol (the handshake goes on). Twisted's own callback answers an empty name when nothing it
    knows is offered, which OpenSSL turns into a fatal ``internal error`` alert: every client offering
    ALPN (browsers, curl, ``requests``) was refused."""
    from OpenSSL import SSL

    def select(connection: Any, offered: list[bytes]) -> Any:
        return HTTP_1_1 if HTTP_1_1 in offered else SSL.NO_OVERLAPPING_PROTOCOLS

    context.set_alpn_select_callback(select)


def tls_from(config: Any = None, environ: Mapping[str, str] = os.environ, server: bool = True) -> TLSConfig:
    """The TLS settings of a process: ``LIBPROCESS_SSL_*`` (or pre-1.0 ``SSL_*``) variables, overridden
    by the ``--ssl_*`` flags found on ``config`` (a flags ``Config``; None for none). A certificate or key
    flag turns TLS on. Raises :class:`TLSConfigError` listing every problem; ``server=False`` (clients)
    makes the certificate and key optional."""
    env = _Environment(environ)
    values: dict[str, Any] = {
        "enabled": env.boolean("ENABLED"),
        "cert_file": env.text("CERT_FILE"),
        "key_file": env.text("KEY_FILE"),
        "ca_file": env.text("CA_FILE"),
        "ca_dir": env.text("CA_DIR"),
        "verify_cert": env.boolean("VERIFY_CERT", "VERIFY_SERVER_CERT"),
        "require_cert": env.boolean("REQUIRE_CERT", "REQUIRE_CLIENT_CERT"),
        "verify_depth": env.integer("VERIFY_DEPTH"),
        "ciphers": env.text("CIPHERS"),
    }
    flags = {"cert_file": "ssl_cert_file", "key_file": "ssl_key_file", "ca_file": "ssl_ca_file",
             "require_cert": "ssl_require_cert"}
    for field, flag in flags.items():
        value = getattr(config, flag, None)
        if value is not None and value != "":
            values[field] = value
            if field in ("cert_file", "key_file"):
                values["enabled"] = True
    tls = TLSConfig(**{name: value for name, value in values.items() if value is not None})
    if tls.enabled:
        if env.boolean("SUPPORT_DOWNGRADE"):
            env.errors.append(f"{env.prefix}SUPPORT_DOWNGRADE: plain and TLS connections on one port are not "
                              "supported; with TLS on, every peer must use TLS")
        env.errors.extend(tls.problems(server))
    if env.errors:
        raise TLSConfigError(env.errors)
    return tls


def env_prefix(environ: Mapping[str, str]) -> str:
    """``LIBPROCESS_SSL_``, or ``SSL_`` for a pre-1.0 configuration: ``SSL_ENABLED`` set and
    ``LIBPROCESS_SSL_ENABLED`` not. The two are never mixed, because ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` are also OpenSSL's own variables for the system CA bundle, set in many
    environments where they mean no certificate of ours."""
    if not environ.get(PREFIX + "ENABLED") and environ.get(OLD_PREFIX + "ENABLED"):
        return OLD_PREFIX
    return PREFIX


class _Environment:
    """Typed reads of the variables under one prefix (empty counts as unset), collecting errors."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.prefix = env_prefix(environ)
        self.errors: list[str] = []

    def text(self, *names: str) -> str | None:
        found = self._find(names)
        return found[1] if found else None

    def boolean(self, *names: str) -> bool | None:
        found = self._find(names)
        if found is None:
            return None
        try:
            return parse_bool(found[1])
        except ValueError:
            self.errors.append(f"{found[0]}={found[1]}: expected true or false")
            return None

    def integer(self, *names: str) -> int | None:
        found = self._find(names)
        if found is None:
            return None
        try:
            return int(found[1])
        except ValueError:
            self.errors.append(f"{found[0]}={found[1]}: expected an integer")
            return None

    def _find(self, names: tuple[str, ...]) -> tuple[str, str] | None:
        for name in names:
            value = self.environ.get(self.prefix + name)
            if value:
                return self.prefix + name, value
        return None


def _read(path: str, what: str, problems: list[str]) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        problems.append(f"cannot read the {what} {path}: {exc.strerror}")
        return None


def _first_certificate(data: bytes, path: str, problems: list[str]) -> x509.Certificate | None:
    pems = _PEM_CERTIFICATE.findall(data)
    if not pems:
        problems.append(f"the certificate file {path} holds no PEM certificate")
        return None
    try:
        return x509.load_pem_x509_certificate(pems[0])
    except ValueError as exc:
        problems.append(f"the certificate in {path} cannot be read: {exc}")
        return None


def _private_key(data: bytes, path: str, problems: list[str]) -> Any:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        problems.append(f"the private key in {path} is encrypted; give an unencrypted key")
    except (ValueError, UnsupportedAlgorithm):
        problems.append(f"the key file {path} holds no PEM private key")
    return None


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
