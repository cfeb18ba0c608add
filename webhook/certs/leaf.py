"""Leaf certificates: building them from a CA and judging whether one is still good. Pure."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.certs.ca import CA, backdate, random_serial, signing_hash, utcnow
from webhook.certs.errors import CertError
from webhook.certs.keys import PublicKey

__all__ = [
    "RENEW_FRACTION",
    "Hosts",
    "build_leaf",
    "chains_to",
    "common_name_attribute",
    "common_name_of",
    "leaf_problem",
    "renew_at",
    "sans_of",
    "split_hosts",
    "subject_of",
]

# Renew once less than this fraction of a certificate's life remains.
RENEW_FRACTION = 1 / 3
# A DNS name is at most 253 characters; CNs built from Kubernetes names stay below that.
MAX_CN = 253


@dataclass(frozen=True)
class Hosts:
    dns: tuple[str, ...]
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]


def split_hosts(hosts: Sequence[str], *, field: str = "hosts") -> Hosts:
    """Sort host strings into DNS names and IP addresses; reject empty or malformed entries."""
    if isinstance(hosts, str):
        raise CertError(f"{field}: expected a list of host names, got a single string {hosts!r}")
    dns: list[str] = []
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for raw in hosts:
        h = raw.strip()
        if not h:
            raise CertError(f"{field}: empty host name")
        try:
            ip = ipaddress.ip_address(h.strip("[]"))
        except ValueError:
            if any(c.isspace() or c in "/:@" for c in h) or len(h) > 253:
                raise CertError(f"{field}: {raw!r} is neither an IP address nor a DNS name") from None
            if h.lower() not in dns:
                dns.append(h.lower())
        else:
            if ip not in ips:
                ips.append(ip)
    if not dns and not ips:
        raise CertError(f"{field}: at least one host name or IP is required")
    return Hosts(dns=tuple(dns), ips=tuple(ips))


def common_name_attribute(cn: str) -> x509.NameAttribute:
    """CN attribute. FSM's proxy CN `<uuid>.sidecar.<sa>.<ns>.<td>` is longer than RFC 5280's
    64-character `ub-common-name`; Go, OpenSSL and Pipy accept it when parsing, and the CN is the
    proxy's identity on the wire, so keep it whole rather than truncate (cryptography checks the
    bound only when building)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Attribute's length", UserWarning)
        return x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=len(cn) <= 64)


def common_name_of(cert: x509.Certificate) -> str:
    """The subject CN ('' when absent), without cryptography's warning about long CNs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Attribute's length", UserWarning)
        attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else ""


def subject_of(cert: x509.Certificate) -> str:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Attribute's length", UserWarning)
        return cert.subject.rfc4514_string()


def build_leaf(
    ca: CA,
    public_key: PublicKey,
    *,
    common_name: str,
    hosts: Hosts | None = None,
    server: bool = True,
    client: bool = False,
    validity: timedelta,
    now: datetime | None = None,
) -> x509.Certificate:
    """Sign a leaf for `public_key`. Never outlives the CA (the chain would be useless after)."""
    if validity <= timedelta(0):
        raise CertError(f"validity: must be positive, got {validity}")
    if not (server or client):
        raise CertError("usage: a leaf needs server auth, client auth or both")
    cn = common_name.strip()
    if not cn or len(cn) > MAX_CN:
        raise CertError(f"common_name: must be 1-{MAX_CN} characters, got {len(cn)}: {cn!r}")
    skew = backdate(validity)
    start = (now or utcnow()) - skew
    end = min(start + skew + validity, ca.not_after)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([common_name_attribute(cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not hasattr(public_key, "curve"),  # RSA key exchange only
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if hosts is not None and (hosts.dns or hosts.ips):
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in hosts.dns]
        names += [x509.IPAddress(ip) for ip in hosts.ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca.key, signing_hash(ca.key))


def sans_of(cert: x509.Certificate) -> Hosts:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return Hosts(dns=(), ips=())
    dns = tuple(d.lower() for d in san.get_values_for_type(x509.DNSName))
    ips = tuple(
        ip
        for ip in san.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    )
    return Hosts(dns=dns, ips=ips)


def chains_to(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer` signed `cert` (signature, issuer name and validity nesting are checked)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def renew_at(cert: x509.Certificate, fraction: float = RENEW_FRACTION) -> datetime:
    """When to renew: once only `fraction` of the lifetime is left."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return end - (end - start) * fraction


def leaf_problem(
    cert: x509.Certificate,
    *,
    issuers: Sequence[x509.Certificate],
    hosts: Hosts | None = None,
    now: datetime | None = None,
    fraction: float = RENEW_FRACTION,
) -> str | None:
    """Why this leaf must be replaced, or None when it is fine to keep."""
    t = now or utcnow()
    if t >= renew_at(cert, fraction):
        return f"expires {cert.not_valid_after_utc.isoformat()} (renewal due)"
    if not any(chains_to(cert, ca) for ca in issuers):
        return "not signed by the current CA"
    if hosts is not None:
        have = sans_of(cert)
        missing = [d for d in hosts.dns if d not in have.dns] + [
            str(i) for i in hosts.ips if i not in have.ips
        ]
        if missing:
            return f"SANs lack {', '.join(missing)}"
    return None
