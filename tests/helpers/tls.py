"""A throwaway PKI for TLS tests: a CA, a server and a client certificate, and a stranger CA.

Made with ``cryptography`` (pyOpenSSL's own dependency) on first use, written into one
temporary directory, and reused by every test of the run (EC P-256 keys: generating the
whole set takes a few milliseconds). The server certificate names ``127.0.0.1`` (an IP
SAN) and ``localhost`` and may also be used as a client identity, as a Mesos process uses
one certificate both ways.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import os
import shutil
import tempfile
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mesostw.auth.tls import TLSConfig


@attrs.frozen
class TestPKI:
    """Paths of the generated files (PEM)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    directory: str
    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca_file: str
    other_server_cert: str
    other_server_key: str

    def server(self, **changes: Any) -> TLSConfig:
        """A daemon's settings: the server identity, trusting the CA."""
        return TLSConfig(**{"enabled": True, "cert_file": self.server_cert, "key_file": self.server_key,
                            "ca_file": self.ca_file, **changes})

    def client(self, with_certificate: bool = False, **changes: Any) -> TLSConfig:
        """A client's settings: trusting the CA, presenting the client certificate if asked."""
        identity = {"cert_file": self.client_cert, "key_file": self.client_key} if with_certificate else {}
        return TLSConfig(**{"enabled": True, "ca_file": self.ca_file, **identity, **changes})

    def environ(self, **extra: str) -> dict[str, str]:
        """``LIBPROCESS_SSL_*`` variables for the server identity."""
        return {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": self.server_cert,
                "LIBPROCESS_SSL_KEY_FILE": self.server_key, "LIBPROCESS_SSL_CA_FILE": self.ca_file, **extra}


_pki: TestPKI | None = None


def pki() -> TestPKI:
    """The run's PKI, generated on first use and removed when the process exits."""
    global _pki
    if _pki is None:
        directory = tempfile.mkdtemp(prefix="mesostw-tls-")
        atexit.register(shutil.rmtree, directory, True)
        _pki = _generate(directory)
    return _pki


def _generate(directory: str) -> TestPKI:
    ca_key, ca = _authority("mesostw test CA")
    other_key, other = _authority("a stranger CA")
    server_key, server = _leaf("mesostw test server", ca_key, ca, server=True)
    client_key, client = _leaf("mesostw test client", ca_key, ca, server=False)
    stranger_key, stranger = _leaf("a stranger server", other_key, other, server=True)

    def write(name: str, data: bytes) -> str:
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    return TestPKI(directory, write("ca.pem", _pem(ca)), write("server.pem", _pem(server)),
                   write("server.key", _key_pem(server_key)), write("client.pem", _pem(client)),
                   write("client.key", _key_pem(client_key)), write("other-ca.pem", _pem(other)),
                   write("other-server.pem", _pem(stranger)), write("other-server.key", _key_pem(stranger_key)))


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))


def _authority(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (_validity(x509.CertificateBuilder()).subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    return key, builder.sign(key, hashes.SHA256())


def _leaf(name: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
          server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server else \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (_validity(x509.CertificateBuilder())
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
