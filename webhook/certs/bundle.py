"""A trust bundle: the CA certificates peers accept, ordered, de-duplicated by fingerprint.

During a CA rotation it holds the old and the new CA so no peer distrusts the other for a moment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from webhook.certs.ca import fingerprint, load_certs_pem
from webhook.certs.errors import CertError

__all__ = ["Bundle"]


@dataclass(frozen=True)
class Bundle:
    certs: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        if not self.certs:
            raise CertError("trust bundle: must hold at least one CA certificate")
        seen: set[str] = set()
        unique = []
        for c in self.certs:
            fp = fingerprint(c)
            if fp not in seen:
                seen.add(fp)
                unique.append(c)
        object.__setattr__(self, "certs", tuple(unique))

    @classmethod
    def of(cls, certs: Iterable[x509.Certificate]) -> Bundle:
        return cls(tuple(certs))

    @classmethod
    def from_pem(cls, pem: bytes, *, field: str = "trust bundle") -> Bundle:
        return cls(tuple(load_certs_pem(pem, field=field)))

    @property
    def pem(self) -> bytes:
        return b"".join(c.public_bytes(Encoding.PEM) for c in self.certs)

    @property
    def pems(self) -> list[bytes]:
        """Each CA as its own PEM string."""
        return [c.public_bytes(Encoding.PEM) for c in self.certs]

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(fingerprint(c) for c in self.certs)

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, x509.Certificate) and fingerprint(cert) in self.fingerprints

    def add(self, cert: x509.Certificate) -> Bundle:
        return Bundle((*self.certs, cert))

    def remove(self, fp: str) -> Bundle:
        return Bundle(tuple(c for c in self.certs if fingerprint(c) != fp))
