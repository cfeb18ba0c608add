"""Issuer, KeyPool, Bundle, ServiceCertCache: CN formats, usages, chains (cryptography + openssl)."""

from __future__ import annotations

import random
import statistics
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from webhook.certs.bundle import Bundle
from webhook.certs.ca import CA, load_cert_pem, utcnow
from webhook.certs.errors import CertError
from webhook.certs.issuer import (
    Issuer,
    bootstrap_cn,
    bootstrap_secret_data,
    parse_duration,
    parse_proxy_cn,
)
from webhook.certs.keys import load_key_pem
from webhook.certs.leaf import chains_to, common_name_of, subject_of
from webhook.certs.pool import KeyPool
from webhook.certs.service import ServiceCertCache


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.generate()


@pytest.fixture
def pool() -> Iterator[KeyPool]:
    p = KeyPool(size=8).start()
    yield p
    p.stop()


def cn_of(cert: x509.Certificate) -> str:
    return common_name_of(cert)


def openssl_verify(tmp_path: Path, ca_pem: bytes, cert_pem: bytes, purpose: str) -> None:
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    (tmp_path / "leaf.pem").write_bytes(cert_pem)
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-purpose",
            purpose,
            str(tmp_path / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_bootstrap_cert_cn_usages_and_secret(ca: CA, pool: KeyPool, tmp_path: Path) -> None:
    issuer = Issuer(ca, pool)
    uid = str(uuidlib.uuid4())
    issued = issuer.issue_bootstrap(uid, "bookbuyer", "bookstore-ns")
    cert = issued.cert
    assert cn_of(cert) == issued.common_name == f"{uid}.sidecar.bookbuyer.bookstore-ns.cluster.local"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    assert chains_to(cert, ca.cert)
    key = load_key_pem(issued.key_pem)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert issued.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    data = bootstrap_secret_data(issued)
    assert set(data) == {"repo_cert.pem", "repo_key.pem", "cacert.pem"}
    assert data["cacert.pem"] == ca.cert_pem
    openssl_verify(tmp_path, data["cacert.pem"], data["repo_cert.pem"], "sslclient")
    openssl_verify(tmp_path, data["cacert.pem"], data["repo_cert.pem"], "sslserver")
    assert "PRIVATE" not in repr(issued)
    assert parse_proxy_cn(issued.common_name) == (uid, "bookbuyer", "bookstore-ns")


def test_trust_domain_configurable(ca: CA, pool: KeyPool) -> None:
    issued = Issuer(ca, pool, trust_domain="mesh.example").issue_bootstrap("u1", "sa", "ns")
    assert issued.common_name == "u1.sidecar.sa.ns.mesh.example"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "sa", "ns"), "uuid"),
        (("u", "SA", "ns"), "service_account"),
        (("u", "sa", "n s"), "namespace"),
        (("u", "sa", "ns/x"), "namespace"),
    ],
)
def test_bad_names_name_the_field(args: tuple[str, str, str], field: str) -> None:
    with pytest.raises(CertError, match=f"^{field}: "):
        bootstrap_cn(*args)


def test_bad_trust_domain() -> None:
    with pytest.raises(CertError, match=r"^trust_domain: "):
        Issuer(CA.generate(), KeyPool(size=1), trust_domain="Bad Domain")


def test_service_cert_cn_and_validity(ca: CA, pool: KeyPool, tmp_path: Path) -> None:
    issuer = Issuer(ca, pool, jitter=0.0)
    now = utcnow()
    issued = issuer.issue_service("bookstore", "bookstore-ns", timedelta(hours=24), now=now)
    assert issued.common_name == "bookstore.bookstore-ns.cluster.local"
    assert abs((issued.not_after - now) - timedelta(hours=24)) < timedelta(seconds=1)
    openssl_verify(tmp_path, issued.ca_pem, issued.cert_pem, "sslclient")


def test_service_expiries_spread_by_jitter(ca: CA, pool: KeyPool) -> None:
    issuer = Issuer(ca, pool, jitter=0.1, rng=random.Random(7))
    now = utcnow()
    lives = [
        (issuer.issue_service("sa", "ns", timedelta(hours=24), now=now).not_after - now).total_seconds()
        for _ in range(200)
    ]
    day = 24 * 3600
    assert all(0.9 * day <= s <= day for s in lives)
    assert max(lives) - min(lives) > 0.08 * day  # spread over ~2.4 h, not a herd
    assert len(set(lives)) > 190
    assert statistics.pstdev(lives) > 0.02 * day


def test_serving_cert(ca: CA, pool: KeyPool, tmp_path: Path) -> None:
    issued = Issuer(ca, pool).issue_serving(["fsm-onboard.fsm-system.svc", "127.0.0.1"])
    openssl_verify(tmp_path, issued.ca_pem, issued.cert_pem, "sslserver")


def test_leaf_never_outlives_ca(pool: KeyPool) -> None:
    short = CA.generate(validity=timedelta(hours=1))
    issued = Issuer(short, pool, jitter=0).issue_service("sa", "ns", timedelta(hours=24))
    assert issued.not_after <= short.not_after


def test_rsa_ca_and_rsa_keys(tmp_path: Path) -> None:
    ca = CA.generate(key_type="rsa-2048")
    with KeyPool(size=2, key_type="rsa-2048") as pool:
        issued = Issuer(ca, pool).issue_bootstrap("u", "sa", "ns")
    assert isinstance(load_key_pem(issued.key_pem), rsa.RSAPrivateKey)
    openssl_verify(tmp_path, issued.ca_pem, issued.cert_pem, "sslclient")


def test_ca_from_pem_checks(ca: CA) -> None:
    again = CA.from_pem(ca.cert_pem, ca.key_pem)
    assert again.fingerprint == ca.fingerprint
    other = CA.generate()
    with pytest.raises(CertError, match="private key: does not match"):
        CA.from_pem(ca.cert_pem, other.key_pem)
    leaf = Issuer(ca, KeyPool(size=1)).issue_serving(["x"])
    with pytest.raises(CertError, match="not a CA"):
        CA.from_pem(leaf.cert_pem, leaf.key_pem)
    with pytest.raises(CertError, match="not an unencrypted PEM private key"):
        CA.from_pem(ca.cert_pem, b"nope")
    assert "PRIVATE" not in repr(ca)


def test_pool_take_is_from_pool_and_counts_misses() -> None:
    pool = KeyPool(size=4)
    # not started: every take is a miss, generated in the caller's thread
    pool.take()
    assert pool.stats()["pool_misses"] == 1
    pool.start()
    try:
        assert pool.wait_full(10)
        keys = [pool.take() for _ in range(4)]
        assert pool.stats()["pool_misses"] == 1
        assert len({k.private_numbers().private_value for k in keys}) == 4  # type: ignore[union-attr]
        assert pool.wait_full(10)
        s = pool.stats()
        assert s["available"] == 4 and s["generated"] >= 9 and s["refill_keys_per_second"] > 0
    finally:
        pool.stop()


@pytest.mark.parametrize(
    ("size", "key_type", "field"), [(0, "ecdsa-p256", "key_pool_size"), (4, "dsa", "key_pool_key_type")]
)
def test_pool_bad_options(size: int, key_type: str, field: str) -> None:
    with pytest.raises(CertError, match=f"^{field}: "):
        KeyPool(size=size, key_type=key_type)


def test_bundle_dedup_add_remove(ca: CA) -> None:
    other = CA.generate()
    b = Bundle.of([ca.cert]).add(other.cert).add(ca.cert)
    assert b.fingerprints == (ca.fingerprint, other.fingerprint)
    assert Bundle.from_pem(b.pem).fingerprints == b.fingerprints
    assert b.remove(ca.fingerprint).fingerprints == (other.fingerprint,)
    with pytest.raises(CertError, match="trust bundle"):
        b.remove(ca.fingerprint).remove(other.fingerprint)


def test_issuer_set_ca_changes_signer_and_bundle(ca: CA, pool: KeyPool) -> None:
    issuer = Issuer(ca, pool)
    new = CA.generate()
    issuer.set_ca(new, Bundle.of([ca.cert, new.cert]))
    issued = issuer.issue_bootstrap("u", "sa", "ns")
    assert chains_to(issued.cert, new.cert)
    assert Bundle.from_pem(issued.ca_pem).fingerprints == (ca.fingerprint, new.fingerprint)
    with pytest.raises(CertError, match="does not contain the signing CA"):
        issuer.set_ca(new, Bundle.of([ca.cert]))


def test_service_cache_renews_before_expiry_and_on_ca_change(ca: CA, pool: KeyPool) -> None:
    issuer = Issuer(ca, pool, jitter=0.0)
    cache = ServiceCertCache(issuer, timedelta(hours=3))
    now = utcnow()
    first = cache.get("sa", "ns", now=now)
    assert cache.get("sa", "ns", now=now + timedelta(hours=1)) is first
    assert cache.due(now=now + timedelta(hours=2, minutes=30)) == [("sa", "ns")]
    renewed = cache.get("sa", "ns", now=now + timedelta(hours=2, minutes=30))
    assert renewed.serial != first.serial
    issuer.set_ca(CA.generate())
    assert cache.due() == [("sa", "ns")]
    assert chains_to(cache.get("sa", "ns").cert, issuer.ca.cert)


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), (60, 60)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text, field="f").total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0s", "1d", "1h foo"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(CertError, match=r"^spec\.certificate.serviceCertValidityDuration: "):
        parse_duration(text, field="spec.certificate.serviceCertValidityDuration")


def test_long_cn_survives_openssl(ca: CA, pool: KeyPool, tmp_path: Path) -> None:
    issued = Issuer(ca, pool).issue_bootstrap(
        str(uuidlib.uuid4()), "a-rather-long-service-account", "a-long-namespace"
    )
    assert len(issued.common_name) > 64
    openssl_verify(tmp_path, issued.ca_pem, issued.cert_pem, "sslclient")
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-subject"], input=issued.cert_pem, capture_output=True, check=True
    )
    assert issued.common_name in out.stdout.decode()
    assert subject_of(load_cert_pem(issued.cert_pem)) == f"CN={issued.common_name}"
