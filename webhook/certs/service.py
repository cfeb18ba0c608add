"""Service certificates the controller hands to proxies, cached and renewed before expiry."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from webhook.certs.ca import fingerprint, utcnow
from webhook.certs.issuer import DEFAULT_SERVICE_VALIDITY, IssuedCert, Issuer
from webhook.certs.leaf import RENEW_FRACTION, chains_to

__all__ = ["ServiceCertCache"]


class ServiceCertCache:
    """`get(sa, ns)` returns a cert valid for a good while; it re-issues once less than a third of
    the (jittered) life is left, or when the signing CA changed (rotation)."""

    def __init__(self, issuer: Issuer, validity: timedelta = DEFAULT_SERVICE_VALIDITY) -> None:
        self.issuer = issuer
        self.validity = validity
        self._certs: dict[tuple[str, str], tuple[str, IssuedCert]] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def _fresh(self, entry: tuple[str, IssuedCert] | None, now: datetime) -> bool:
        if entry is None:
            return False
        ca_fp, cert = entry
        if ca_fp != self.issuer.ca.fingerprint or cert.ca_pem != self.issuer.bundle.pem:
            return False
        life = cert.not_after - cert.not_before
        return now < cert.not_after - life * RENEW_FRACTION

    def get(self, sa: str, ns: str, *, now: datetime | None = None) -> IssuedCert:
        t = now or utcnow()
        with self._lock:
            entry = self._certs.get((sa, ns))
            if self._fresh(entry, t):
                assert entry is not None
                return entry[1]
            cert = self.issuer.issue_service(sa, ns, self.validity, now=t)
            assert chains_to(cert.cert, self.issuer.ca.cert)
            self._certs[(sa, ns)] = (fingerprint(self.issuer.ca.cert), cert)
            self.issued += 1
            return cert

    def due(self, *, now: datetime | None = None) -> list[tuple[str, str]]:
        """Identities whose cert must be re-issued now (the controller then re-pushes config)."""
        t = now or utcnow()
        with self._lock:
            return [k for k, v in self._certs.items() if not self._fresh(v, t)]

    def forget(self, sa: str, ns: str) -> None:
        with self._lock:
            self._certs.pop((sa, ns), None)
