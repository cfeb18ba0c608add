"""ensure_cert_dir: create, reuse, re-issue the leaf only, atomic and private files."""

from __future__ import annotations

import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from webhook.certs.ca import CA, load_cert_pem, utcnow
from webhook.certs.errors import CertError
from webhook.certs.files import ensure_cert_dir
from webhook.certs.leaf import chains_to, sans_of

HOSTS = ["localhost", "127.0.0.1", "fsm-onboard.fsm-system.svc"]


def test_creates_ca_and_leaf_with_private_keys(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS)
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {
        "ca.crt",
        "ca.key",
        "tls.crt",
        "tls.key",
    }
    for name in ("ca.key", "tls.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    ca = load_cert_pem(files.ca.read_bytes())
    leaf = load_cert_pem(files.cert.read_bytes())
    assert chains_to(leaf, ca)
    sans = sans_of(leaf)
    assert sans.dns == ("localhost", "fsm-onboard.fsm-system.svc")
    assert [str(i) for i in sans.ips] == ["127.0.0.1"]
    assert b"PRIVATE KEY" in files.key.read_bytes()
    assert b"BEGIN PRIVATE KEY" in files.key.read_bytes()  # PKCS8


def test_openssl_verifies_the_chain(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS)
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(files.ca), "-purpose", "sslserver", str(files.cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(": OK")


def test_reuses_valid_files(tmp_path: Path) -> None:
    ensure_cert_dir(tmp_path, HOSTS)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.*")}
    ensure_cert_dir(tmp_path, list(reversed(HOSTS)))
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.*")} == before


def test_new_host_reissues_leaf_keeps_ca(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS)
    ca_before, leaf_before = files.ca.read_bytes(), files.cert.read_bytes()
    ensure_cert_dir(tmp_path, [*HOSTS, "::1"])
    assert files.ca.read_bytes() == ca_before
    assert files.cert.read_bytes() != leaf_before
    assert "::1" in [str(i) for i in sans_of(load_cert_pem(files.cert.read_bytes())).ips]


def test_stale_leaf_reissued_only(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS, validity=timedelta(days=3))
    ca_before, leaf_before = files.ca.read_bytes(), files.cert.read_bytes()
    # Two days later less than a third of the three-day life is left.
    ensure_cert_dir(tmp_path, HOSTS, validity=timedelta(days=3), now=utcnow() + timedelta(days=2, hours=1))
    assert files.ca.read_bytes() == ca_before
    assert files.cert.read_bytes() != leaf_before


def test_leaf_from_another_ca_reissued(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS)
    other = CA.generate()
    files.ca.write_bytes(other.cert_pem)
    (tmp_path / "ca.key").write_bytes(other.key_pem)
    ensure_cert_dir(tmp_path, HOSTS)
    assert chains_to(load_cert_pem(files.cert.read_bytes()), other.cert)


def test_mismatched_leaf_key_reissued(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS)
    old_key = files.key.read_bytes()
    ensure_cert_dir(tmp_path / "other", HOSTS)
    files.key.write_bytes((tmp_path / "other" / "tls.key").read_bytes())
    ensure_cert_dir(tmp_path, HOSTS)
    assert files.key.read_bytes() != old_key
    leaf = load_cert_pem(files.cert.read_bytes())
    assert isinstance(leaf, x509.Certificate)


def test_expiring_ca_regenerated(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS, ca_validity=timedelta(days=30))
    ca_before = files.ca.read_bytes()
    ensure_cert_dir(tmp_path, HOSTS, ca_validity=timedelta(days=30), now=utcnow() + timedelta(days=25))
    assert files.ca.read_bytes() != ca_before
    assert chains_to(load_cert_pem(files.cert.read_bytes()), load_cert_pem(files.ca.read_bytes()))


def test_corrupt_ca_is_a_clear_error(tmp_path: Path) -> None:
    ensure_cert_dir(tmp_path, HOSTS)
    (tmp_path / "ca.crt").write_bytes(b"garbage")
    with pytest.raises(CertError, match=r"ca\.crt.*not a PEM certificate.*delete"):
        ensure_cert_dir(tmp_path, HOSTS)


@pytest.mark.parametrize(
    ("hosts", "message"),
    [([], "at least one"), ([""], "empty host"), (["a b"], "neither an IP"), ("localhost", "single string")],
)
def test_bad_hosts_rejected(tmp_path: Path, hosts: list[str], message: str) -> None:
    with pytest.raises(CertError, match=f"hosts: .*{message}"):
        ensure_cert_dir(tmp_path, hosts)


def test_rsa_key_type(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, ["localhost"], key_type="rsa-2048")
    assert "RSA" in type(load_cert_pem(files.cert.read_bytes()).public_key()).__name__


def test_no_temporary_files_left(tmp_path: Path) -> None:
    ensure_cert_dir(tmp_path, HOSTS)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_ca_without_key_is_used_not_replaced(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS)
    (tmp_path / "ca.key").unlink()  # bring-your-own: the CA key stays elsewhere
    ca_before = files.ca.read_bytes()
    assert ensure_cert_dir(tmp_path, HOSTS) == files
    assert files.ca.read_bytes() == ca_before
    with pytest.raises(
        CertError, match=r"SANs lack example\.org; .*ca\.key is absent so it cannot be re-issued"
    ):
        ensure_cert_dir(tmp_path, [*HOSTS, "example.org"])
    assert files.ca.read_bytes() == ca_before
