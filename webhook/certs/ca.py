"""The mesh certificate authority: a self-signed CA certificate plus its key, in memory.

Pure: no files, no API server. `files.py` and `kube.py` decide where the PEM lives.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from webhook.certs.errors import CertError
from webhook.certs.keys import DEFAULT_KEY_TYPE, KeyType, PrivateKey, generate_key, key_to_pem, load_key_pem

__all__ = [
    "CA",
    "DEFAULT_CA_CN",
    "DEFAULT_CA_VALIDITY",
    "fingerprint",
    "load_cert_pem",
    "load_certs_pem",
    "utcnow",
]

DEFAULT_CA_CN = "fsm-onboard mesh CA"
DEFAULT_CA_VALIDITY = timedelta(days=3650)
# Backdate so a peer whose clock is a little behind still accepts a certificate issued just now.
CLOCK_SKEW = timedelta(minutes=5)


def backdate(validity: timedelta) -> timedelta:
    """How far before "now" a certificate starts: the clock-skew allowance, but never more than a
    tenth of its life so short-lived certificates (tests, forced rotation) renew on schedule."""
    return min(CLOCK_SKEW, validity / 10)


def utcnow() -> datetime:
    return datetime.now(UTC)


def random_serial() -> int:
    """Positive 159-bit serial (RFC 5280 caps serials at 20 octets)."""
    return secrets.randbits(159) | 1


def signing_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER, hex: a stable short identity for logs and rotation state."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_cert_pem(pem: bytes, *, field: str = "cert") -> x509.Certificate:
    """Parse exactly the first PEM certificate; the error names the field."""
    certs = load_certs_pem(pem, field=field)
    return certs[0]


def load_certs_pem(pem: bytes, *, field: str = "cert") -> list[x509.Certificate]:
    """Parse one or more concatenated PEM certificates (a trust bundle)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CertError(f"{field}: not a PEM certificate ({exc})") from None
    if not certs:
        raise CertError(f"{field}: no PEM certificate found")
    return certs


def public_key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(cert.public_key().public_bytes(der, fmt) == key.public_key().public_bytes(der, fmt))


@dataclass(frozen=True)
class CA:
    """A signing CA. Build it with `CA.generate(...)` or `CA.from_pem(cert_pem, key_pem)`."""

    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def generate(
        cls,
        *,
        common_name: str = DEFAULT_CA_CN,
        key_type: KeyType = DEFAULT_KEY_TYPE,
        validity: timedelta = DEFAULT_CA_VALIDITY,
        organization: str = "fsm-onboard",
        now: datetime | None = None,
    ) -> CA:
        """A new self-signed CA (pathLen 0: it signs leaves only)."""
        if validity <= timedelta(0):
            raise CertError(f"validity: must be positive, got {validity}")
        if not common_name.strip():
            raise CertError("common_name: must not be empty")
        key = generate_key(key_type)
        skew = backdate(validity)
        start = (now or utcnow()) - skew
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(random_serial())
            .not_valid_before(start)
            .not_valid_after(start + skew + validity)
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
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
        )
        return cls(cert=builder.sign(key, signing_hash(key)), key=key)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, *, source: str = "CA") -> CA:
        """Load a CA (bring-your-own or stored); checks it is a CA and the key matches."""
        cert = load_cert_pem(cert_pem, field=f"{source} certificate")
        key = load_key_pem(key_pem, field=f"{source} private key")
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise CertError(f"{source} certificate: not a CA (basicConstraints CA:TRUE missing)")
        if not public_key_matches(cert, key):
            raise CertError(f"{source} private key: does not match the CA certificate")
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
            raise CertError(f"{source} private key: RSA {key.key_size} is too weak; use >= 2048")
        return cls(cert=cert, key=key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return key_to_pem(self.key)

    @property
    def not_after(self) -> datetime:
        return self.cert.not_valid_after_utc

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    def __repr__(self) -> str:  # never let a key reach a log through repr()
        return f"CA(subject={self.cert.subject.rfc4514_string()!r}, sha256={self.fingerprint[:16]}…)"
