"""Server certificates for test upstreams, good and bad, made with trustme and cryptography.

``make(kind, trusted_ca)`` gives a ``ServerCert`` for 127.0.0.1 that is: ``valid``
(signed by the CA waylay trusts), ``expired``, ``not yet valid``, ``self-signed``,
``wrong host`` (issued for another name) or ``untrusted CA`` (signed by a CA nobody
trusts). ``reason`` is what waylay should report for it.
"""

from __future__ import annotations

import datetime
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DAY = datetime.timedelta(days=1)

REASONS = {
    "valid": None,
    "expired": "expired",
    "not yet valid": "not yet valid",
    "self-signed": "self-signed",
    "wrong host": "hostname mismatch",
    "untrusted CA": "untrusted issuer",
}
BAD = [kind for kind, reason in REASONS.items() if reason]


@dataclass(frozen=True)
class ServerCert:
    kind: str
    chain_pem: bytes  # leaf first
    key_pem: bytes

    @property
    def reason(self) -> str | None:
        return REASONS[self.kind]

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.chain_pem)[0]

    @property
    def fingerprint(self) -> str:
        return "sha256:" + self.leaf.fingerprint(hashes.SHA256()).hex(":").upper()

    def configure(self, ctx: ssl.SSLContext) -> None:
        """Serve this certificate from ``ctx`` (also to switch a running server's cert)."""
        with tempfile.NamedTemporaryFile(suffix=".pem") as f:
            f.write(self.key_pem + self.chain_pem)
            f.flush()
            ctx.load_cert_chain(f.name)

    def context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.configure(ctx)
        return ctx


def _from_trustme(kind: str, leaf: trustme.LeafCert) -> ServerCert:
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return ServerCert(kind, chain, leaf.private_key_pem.bytes())


def self_signed(host: str = "127.0.0.1") -> tuple[bytes, bytes]:
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + 30 * DAY)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def make(kind: str, trusted_ca: trustme.CA) -> ServerCert:
    now = datetime.datetime.now(datetime.UTC)
    if kind == "valid":
        return _from_trustme(kind, trusted_ca.issue_cert("127.0.0.1"))
    if kind == "expired":
        leaf = trusted_ca.issue_cert("127.0.0.1", not_before=now - 30 * DAY, not_after=now - DAY)
        return _from_trustme(kind, leaf)
    if kind == "not yet valid":
        leaf = trusted_ca.issue_cert("127.0.0.1", not_before=now + DAY, not_after=now + 30 * DAY)
        return _from_trustme(kind, leaf)
    if kind == "self-signed":
        cert, key = self_signed()
        return ServerCert(kind, cert, key)
    if kind == "wrong host":
        return _from_trustme(kind, trusted_ca.issue_cert("wrong.example"))
    if kind == "untrusted CA":
        return _from_trustme(kind, trustme.CA().issue_cert("127.0.0.1"))
    raise ValueError(kind)


def write_pem(path: Path, cert: ServerCert) -> Path:
    path.write_bytes(cert.chain_pem)
    return path
