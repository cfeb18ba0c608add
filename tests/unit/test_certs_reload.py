"""CertReloader over real TLS: new handshakes see new files; a broken pair keeps the old cert."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from helpers import TLSServer

from webhook.certs.ca import load_cert_pem
from webhook.certs.files import ensure_cert_dir
from webhook.certs.reload import CertReloader, server_ssl_context

HOSTS = ["localhost", "127.0.0.1"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, CertReloader, TLSServer]]:
    files = ensure_cert_dir(tmp_path, HOSTS)
    ctx = server_ssl_context(files.cert, files.key)
    reloader = CertReloader(ctx, files.cert, files.key)
    server = TLSServer(ctx)
    try:
        yield tmp_path, reloader, server
    finally:
        server.close()
        reloader.stop()


def peer_serial(port: int, ca: Path, host: str = "127.0.0.1") -> int:
    cctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as s,
        cctx.wrap_socket(s, server_hostname=host) as t,
    ):
        der = t.getpeercert(binary_form=True)
        assert der is not None
        assert t.recv(2) == b"ok"
    return x509.load_der_x509_certificate(der).serial_number


def reissue(d: Path) -> None:
    (d / "tls.crt").unlink()
    ensure_cert_dir(d, HOSTS)


def test_no_change_no_reload(served: tuple[Path, CertReloader, TLSServer]) -> None:
    _, reloader, _ = served
    assert reloader.check() is False
    assert reloader.reloads == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # without and with SNI
def test_new_handshakes_get_new_cert(served: tuple[Path, CertReloader, TLSServer], host: str) -> None:
    d, reloader, server = served
    first = peer_serial(server.port, d / "ca.crt", host)
    reissue(d)
    assert reloader.check() is True
    second = peer_serial(server.port, d / "ca.crt", host)
    assert first != second
    assert second == load_cert_pem((d / "tls.crt").read_bytes()).serial_number
    assert server.errors == []


def test_mismatched_pair_keeps_old_cert(
    served: tuple[Path, CertReloader, TLSServer],
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    d, reloader, server = served
    first = peer_serial(server.port, d / "ca.crt")
    other = tmp_path_factory.mktemp("other")
    ensure_cert_dir(other, HOSTS)
    key_text = (other / "tls.key").read_bytes()
    (d / "tls.key").write_bytes(key_text)  # new key beside the old cert: a torn write
    assert reloader.check() is False
    assert reloader.failures == 1
    assert peer_serial(server.port, d / "ca.crt") == first
    assert "keeping the previous certificate" in caplog.text
    assert "PRIVATE KEY" not in caplog.text and key_text.decode()[40:80] not in caplog.text
    # the writer finishes: the matching cert arrives, the next check picks the pair up
    (d / "tls.crt").write_bytes((other / "tls.crt").read_bytes())
    assert reloader.check() is True
    assert peer_serial(server.port, other / "ca.crt") != first


def test_missing_files_keep_old_cert(served: tuple[Path, CertReloader, TLSServer]) -> None:
    d, reloader, server = served
    first = peer_serial(server.port, d / "ca.crt")
    (d / "tls.crt").unlink()
    assert reloader.check() is False
    assert peer_serial(server.port, d / "ca.crt") == first


def test_background_thread_reloads(served: tuple[Path, CertReloader, TLSServer]) -> None:
    d, reloader, server = served
    reloader.start(interval=0.05)
    first = peer_serial(server.port, d / "ca.crt")
    reissue(d)
    deadline = time.monotonic() + 5
    while reloader.reloads == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reloader.reloads == 1
    assert peer_serial(server.port, d / "ca.crt") != first


def test_client_ca_required_after_reload(tmp_path: Path) -> None:
    """With client_ca the reloaded context still demands a client certificate (mTLS repo server)."""
    files = ensure_cert_dir(tmp_path, HOSTS)
    ctx = server_ssl_context(files.cert, files.key, client_ca=files.ca)
    reloader = CertReloader(ctx, files.cert, files.key, client_ca=files.ca)
    server = TLSServer(ctx)
    try:
        reissue(tmp_path)
        assert reloader.check()
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            peer_serial(server.port, files.ca)
    finally:
        server.close()


def test_second_reloader_on_same_context_refused(tmp_path: Path) -> None:
    files = ensure_cert_dir(tmp_path, HOSTS)
    ctx = server_ssl_context(files.cert, files.key)
    CertReloader(ctx, files.cert, files.key)
    with pytest.raises(ValueError, match="sni_callback"):
        CertReloader(ctx, files.cert, files.key)
