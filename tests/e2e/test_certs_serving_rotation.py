"""A forced short-validity rotation changes the served certificate while a client keeps posting
admissions, with zero failures. Real uvicorn over real TLS on loopback; no API server needed.

Repeat it against the lead's server: `fsm-onboard serve --standalone --cert-dir D` with serving
validity forced short (or run `CertDirRenewer(D, hosts, validity=timedelta(seconds=4)).start(0.2)`
beside it) and point `post_admissions` at its port and D/ca.crt.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from bench.certs import ThreadedServer
from bench.common import asgi_request_body
from webhook.certs.files import CertDirRenewer, ensure_cert_dir

HOSTS = ["localhost", "127.0.0.1"]
REVIEW: dict[str, Any] = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE"},
}


async def admission_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Minimal AdmissionReview echo: allowed, same uid."""
    body = await asgi_request_body(scope, receive, send)
    if body is None:
        return
    uid = json.loads(body)["request"]["uid"]
    out = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": True},
        }
    ).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": out})


class Served(ThreadedServer):
    """The minimal admission app over TLS with 4-second serving certs and a CertReloader."""

    def __init__(self, cert_dir: Path) -> None:
        files = ensure_cert_dir(cert_dir, HOSTS, validity=timedelta(seconds=4))
        self.ca = files.ca
        super().__init__(admission_app, files.cert, files.key)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    try:
        yield s
    finally:
        s.close()


def post_admission(port: int, ctx: ssl.SSLContext, uid: str) -> int:
    """One admission on a fresh connection (a fresh handshake); returns the served cert's serial."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        review = {**REVIEW, "request": {**REVIEW["request"], "uid": uid}}
        conn.request("POST", "/mutate", body=json.dumps(review), headers={"content-type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200 and body["response"] == {"uid": uid, "allowed": True}
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        conn.close()


def test_short_validity_rotation_zero_failures(served: Served, tmp_path: Path) -> None:
    renewer = CertDirRenewer(tmp_path, HOSTS, validity=timedelta(seconds=4))
    served.reloader.start(interval=0.05)
    renewer.start(interval=0.1)
    ctx = ssl.create_default_context(cafile=str(served.ca))  # the CA never changes here
    serials: list[int] = []
    failures: list[str] = []
    deadline = time.monotonic() + 9
    n = 0
    try:
        while time.monotonic() < deadline and n < 50_000:  # bounded
            n += 1
            try:
                serials.append(post_admission(served.port, ctx, f"u-{n}"))
            except Exception as exc:
                failures.append(f"{n}: {type(exc).__name__}: {exc}")
    finally:
        renewer.stop()
    distinct = list(dict.fromkeys(serials))
    assert failures == [], failures[:5]
    assert n > 50, f"only {n} admissions in 9 s"
    assert len(distinct) >= 3, f"served cert changed {len(distinct) - 1} times in {n} admissions"
    assert served.reloader.reloads >= 2
