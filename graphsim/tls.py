"""graphsim's own certificate authority and server certificate.

Production and demo share one MSAL/requests code path, so graphsim speaks real HTTPS. It issues
itself a CA and a server certificate for the loopback names, and writes a CA bundle (the system CAs
plus graphsim's CA) that clients trust through `REQUESTS_CA_BUNDLE`. Everything is idempotent: an
existing CA in the directory is reused, so a bundle handed to other processes stays valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1", "::1")

# The system bundle as it was when graphsim was first imported, before anything pointed
# REQUESTS_CA_BUNDLE at a graphsim bundle (which would otherwise nest bundles inside bundles).
_ORIGINAL_SYSTEM_BUNDLE = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files graphsim serves with and hands to its clients."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    bundle: Path  # system CAs + graphsim CA, for REQUESTS_CA_BUNDLE

    def server_ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.server_cert), str(self.server_key))
        return context


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _new_server_key() -> ec.EllipticCurvePrivateKey:
    # ECDSA P-256: werkzeug closes every connection, so each request pays a TLS handshake, and
    # ECDSA handshakes are several times cheaper than RSA-2048 ones.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _system_ca_pem() -> str:
    """The machine's CAs: the bundle REQUESTS_CA_BUNDLE named at start-up, else certifi's."""
    candidates = [_ORIGINAL_SYSTEM_BUNDLE, certifi.where()]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and "graphsim" not in Path(candidate).name:
            return Path(candidate).read_text()
    return ""


def _write_ca(files: TlsFiles) -> None:
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graphsim demo CA (not trusted)")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    files.ca_key.write_bytes(_key_pem(key))
    files.ca_key.chmod(0o600)
    files.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_server_cert(files: TlsFiles) -> None:
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    key = _new_server_key()
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graphsim")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files.server_key.write_bytes(_key_pem(key))
    files.server_key.chmod(0o600)
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_tls(directory: str | os.PathLike[str]) -> TlsFiles:
    """Create (if missing) the CA, server certificate and CA bundle in `directory`."""
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        directory=base,
        ca_cert=base / "ca.pem",
        ca_key=base / "ca-key.pem",
        server_cert=base / "server.pem",
        server_key=base / "server-key.pem",
        bundle=base / "ca-bundle.pem",
    )
    if not (files.ca_cert.is_file() and files.ca_key.is_file()):
        _write_ca(files)
        files.server_cert.unlink(missing_ok=True)
    if not (files.server_cert.is_file() and files.server_key.is_file()):
        _write_server_cert(files)
    ca_pem = files.ca_cert.read_text()
    bundle = _system_ca_pem().rstrip("\n") + "\n" + ca_pem
    if not files.bundle.is_file() or files.bundle.read_text() != bundle:
        files.bundle.write_text(bundle)
    return files
