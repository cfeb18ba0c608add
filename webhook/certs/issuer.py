"""Issuing proxy bootstrap, service and serving certificates from the mesh CA.

No key generation here: keys come from a `KeyPool`, so an admission call only signs (~0.1 ms for
ECDSA). The signing CA and trust bundle can be swapped at run time (CA rotation) with `set_ca`.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from webhook.certs.bundle import Bundle
from webhook.certs.ca import CA
from webhook.certs.errors import CertError
from webhook.certs.keys import key_to_pem
from webhook.certs.leaf import Hosts, build_leaf, split_hosts
from webhook.certs.pool import KeyPool

__all__ = [
    "BOOTSTRAP_CA_KEY",
    "BOOTSTRAP_CERT_KEY",
    "BOOTSTRAP_KEY_KEY",
    "DEFAULT_BOOTSTRAP_VALIDITY",
    "DEFAULT_JITTER",
    "DEFAULT_SERVICE_VALIDITY",
    "DEFAULT_TRUST_DOMAIN",
    "IssuedCert",
    "Issuer",
    "bootstrap_cn",
    "bootstrap_secret_data",
    "parse_duration",
    "parse_proxy_cn",
    "service_cn",
]

DEFAULT_TRUST_DOMAIN = "cluster.local"
DEFAULT_SERVICE_VALIDITY = timedelta(hours=24)
DEFAULT_BOOTSTRAP_VALIDITY = timedelta(days=365)
DEFAULT_JITTER = 0.1  # service certs lose up to 10 % of their validity at random
BOOTSTRAP_CERT_KEY, BOOTSTRAP_KEY_KEY, BOOTSTRAP_CA_KEY = "repo_cert.pem", "repo_key.pem", "cacert.pem"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def _check_name(value: str, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise CertError(f"{field}: {value!r} is not a valid Kubernetes name (lowercase DNS-1123)")
    return value


def _check_trust_domain(value: str) -> str:
    return _check_name(value.strip().lower(), "trust_domain")


def bootstrap_cn(
    uuid: str, service_account: str, namespace: str, trust_domain: str = DEFAULT_TRUST_DOMAIN
) -> str:
    """FSM's proxy identity: `<uuid>.sidecar.<serviceaccount>.<namespace>.<trust-domain>`."""
    return ".".join(
        (
            _check_name(uuid, "uuid"),
            "sidecar",
            _check_name(service_account, "service_account"),
            _check_name(namespace, "namespace"),
            _check_trust_domain(trust_domain),
        )
    )


def service_cn(service_account: str, namespace: str, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    """FSM's service identity: `<sa>.<ns>.<trust-domain>`."""
    return ".".join(
        (
            _check_name(service_account, "service_account"),
            _check_name(namespace, "namespace"),
            _check_trust_domain(trust_domain),
        )
    )


def parse_proxy_cn(cn: str, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> tuple[str, str, str]:
    """(uuid, service_account, namespace) from a bootstrap CN; CertError if it is not one."""
    suffix = "." + _check_trust_domain(trust_domain)
    parts = cn[: -len(suffix)].split(".") if cn.endswith(suffix) else []
    if len(parts) != 4 or parts[1] != "sidecar":
        raise CertError(f"common_name: {cn!r} is not <uuid>.sidecar.<sa>.<ns>{suffix}")
    return parts[0], parts[2], parts[3]


def parse_duration(value: str | int | float, *, field: str) -> timedelta:
    """Go-style durations as MeshConfig writes them ("24h", "1h30m", "90s"); numbers are seconds."""
    if isinstance(value, bool):
        raise CertError(f"{field}: expected a duration like '24h', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            n, unit = float(m.group(1)), m.group(2)
            seconds += n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
            pos = m.end()
        if not text or pos != len(text):
            raise CertError(f"{field}: {value!r} is not a duration like '24h', '1h30m' or '90s'")
    if seconds <= 0:
        raise CertError(f"{field}: must be positive, got {value!r}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class IssuedCert:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes  # the whole trust bundle: during rotation it holds old and new CA
    common_name: str
    not_after: datetime
    not_before: datetime
    serial: int

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def __repr__(self) -> str:  # keep key_pem out of logs and tracebacks
        return f"IssuedCert(cn={self.common_name!r}, not_after={self.not_after.isoformat()}, serial={self.serial:x})"


def bootstrap_secret_data(issued: IssuedCert) -> dict[str, bytes]:
    """The certificate part of FSM's `sidecar-bootstrap-config-<uuid>` Secret (raw bytes;
    base64 them for `Secret.data`)."""
    return {
        BOOTSTRAP_CERT_KEY: issued.cert_pem,
        BOOTSTRAP_KEY_KEY: issued.key_pem,
        BOOTSTRAP_CA_KEY: issued.ca_pem,
    }


class Issuer:
    """Signs leaves with the current CA using keys from the pool."""

    def __init__(
        self,
        ca: CA,
        key_pool: KeyPool,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        *,
        bundle: Bundle | None = None,
        bootstrap_validity: timedelta = DEFAULT_BOOTSTRAP_VALIDITY,
        jitter: float = DEFAULT_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= jitter < 1:
            raise CertError(f"jitter: must be in [0, 1), got {jitter!r}")
        if bootstrap_validity <= timedelta(0):
            raise CertError(f"bootstrap_validity: must be positive, got {bootstrap_validity}")
        self.trust_domain = _check_trust_domain(trust_domain)
        self.key_pool = key_pool
        self.bootstrap_validity = bootstrap_validity
        self.jitter = jitter
        self._rng = rng or random.SystemRandom()
        self._lock = threading.Lock()
        self._state = (ca, bundle or Bundle((ca.cert,)))
        self._check_bundle(ca, self._state[1])

    @staticmethod
    def _check_bundle(ca: CA, bundle: Bundle) -> None:
        if ca.cert not in bundle:
            raise CertError("trust bundle: does not contain the signing CA")

    @property
    def ca(self) -> CA:
        return self._state[0]

    @property
    def bundle(self) -> Bundle:
        return self._state[1]

    def set_ca(self, ca: CA, bundle: Bundle | None = None) -> None:
        """Swap the signing CA and/or trust bundle; later issues use them (rotation)."""
        b = bundle or Bundle((ca.cert,))
        self._check_bundle(ca, b)
        with self._lock:
            self._state = (ca, b)

    def _issue(
        self,
        cn: str,
        *,
        validity: timedelta,
        hosts: Hosts | None,
        client: bool,
        now: datetime | None,
    ) -> IssuedCert:
        ca, bundle = self._state  # one consistent snapshot even while set_ca runs
        key = self.key_pool.take()
        cert = build_leaf(
            ca,
            key.public_key(),
            common_name=cn,
            hosts=hosts,
            server=True,
            client=client,
            validity=validity,
            now=now,
        )
        return IssuedCert(
            cert_pem=cert.public_bytes(Encoding.PEM),
            key_pem=key_to_pem(key),
            ca_pem=bundle.pem,
            common_name=cn,
            not_after=cert.not_valid_after_utc,
            not_before=cert.not_valid_before_utc,
            serial=cert.serial_number,
        )

    def issue_bootstrap(
        self, uuid: str, service_account: str, namespace: str, *, now: datetime | None = None
    ) -> IssuedCert:
        """The proxy's client cert for the repo (and server cert for its listeners)."""
        cn = bootstrap_cn(uuid, service_account, namespace, self.trust_domain)
        return self._issue(
            cn, validity=self.bootstrap_validity, hosts=Hosts(dns=(cn,), ips=()), client=True, now=now
        )

    def issue_service(
        self,
        sa: str,
        ns: str,
        validity: timedelta = DEFAULT_SERVICE_VALIDITY,
        *,
        now: datetime | None = None,
    ) -> IssuedCert:
        """A service identity cert; its life is cut by up to `jitter` at random so renewals spread."""
        if validity <= timedelta(0):
            raise CertError(f"serviceCertValidityDuration: must be positive, got {validity}")
        cn = service_cn(sa, ns, self.trust_domain)
        jittered = validity * (1 - self.jitter * self._rng.random())
        return self._issue(cn, validity=jittered, hosts=Hosts(dns=(cn,), ips=()), client=True, now=now)

    def issue_serving(
        self,
        hosts: Sequence[str],
        validity: timedelta = timedelta(days=30),
        *,
        now: datetime | None = None,
    ) -> IssuedCert:
        """The webhook's (or repo server's) TLS serving cert, SANs = hosts."""
        parsed = split_hosts(hosts)
        cn = parsed.dns[0] if parsed.dns else str(parsed.ips[0])
        return self._issue(cn, validity=validity, hosts=parsed, client=False, now=now)
