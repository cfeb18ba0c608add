"""The webhook over real HTTPS: `fsm-onboard serve --standalone` in a subprocess, a TLS client against it."""

from __future__ import annotations

import base64
import os
import ssl
import time

import httpx
import jsonpatch
import orjson
import pytest
from helpers import review, sample_pod, serve_standalone


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cert_dir = tmp_path_factory.mktemp("certs")
    # The CA exists once the server has started: the client context is built inside the `with`.
    with (
        serve_standalone(cert_dir) as (port, _proc),
        httpx.Client(
            base_url=f"https://127.0.0.1:{port}",
            verify=ssl.create_default_context(cafile=str(cert_dir / "ca.crt")),
            timeout=10,
        ) as client,
    ):
        yield client, cert_dir, port


def post(client, payload, **kw):
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return client.post(
        "/mutate-pod-creation", content=data, headers={"content-type": "application/json"}, **kw
    )


def test_injects_and_patch_applies(server):
    client, _, _ = server
    pod = sample_pod()
    r = post(client, review(pod, uid="abc"))
    assert r.status_code == 200
    resp = r.json()["response"]
    assert resp["uid"] == "abc" and resp["allowed"] is True and resp["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(pod, orjson.loads(base64.b64decode(resp["patch"])))
    names = [c["name"] for c in patched["spec"]["containers"]]
    assert names[-1] == "sidecar" and [c["name"] for c in patched["spec"]["initContainers"]] == ["fsm-init"]
    assert "fsm-proxy-uuid" in patched["metadata"]["labels"]


def test_opted_out_pod_is_allowed_without_patch(server):
    client, _, _ = server
    resp = post(client, review(sample_pod({"flomesh.io/sidecar-injection": "disabled"}))).json()["response"]
    assert resp["allowed"] is True and "patch" not in resp


def test_bad_annotation_is_denied_with_a_message(server):
    client, _, _ = server
    resp = post(client, review(sample_pod({"flomesh.io/outbound-port-exclusion-list": "80,99999"}))).json()[
        "response"
    ]
    assert resp["allowed"] is False
    assert "flomesh.io/outbound-port-exclusion-list" in resp["status"]["message"]
    assert "99999" in resp["status"]["message"]
    resp = post(client, review(sample_pod({"flomesh.io/sidecar-injection": "perhaps"}))).json()["response"]
    assert resp["allowed"] is False and "perhaps" in resp["status"]["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"{oops", "(body)"),
        ({"apiVersion": "v1", "kind": "AdmissionReview", "request": {}}, "apiVersion"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}, "kind"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request"),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"object": {}}},
            "request.uid",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u"}},
            "request.object",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {"uid": "u", "kind": {"kind": "Deployment"}, "object": {"kind": "Deployment"}},
            },
            "request.kind",
        ),
    ],
)
def test_bad_input_is_400_naming_the_problem(server, payload, field):
    client, _, _ = server
    r = post(client, payload)
    assert r.status_code == 400
    assert r.json()["field"] == field and r.json()["reason"]


def test_body_over_3mib_is_413(server):
    client, _, _ = server
    r = post(client, b"{" + b" " * (3 * 1024 * 1024 + 10) + b"}")
    assert r.status_code == 413 and r.json()["limit_bytes"] == 3 * 1024 * 1024


def test_health_ready_metrics(server):
    client, _, _ = server
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    post(client, review(sample_pod()))
    text = client.get("/metrics").text
    assert 'fsm_onboard_admissions_total{reason="pod-enabled",result="injected"}' in text
    assert "fsm_onboard_admission_seconds_bucket" in text
    assert 'fsm_onboard_bad_requests_total{field="(body)"}' in text


def _client_ctx(cert_dir, version):
    ctx = ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client really offer old protocols
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(server):
    _, cert_dir, port = server
    with httpx.Client(verify=_client_ctx(cert_dir, ssl.TLSVersion.TLSv1_2)) as c:
        assert c.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
    with (
        pytest.raises(httpx.ConnectError, match=r"(?i)version|protocol|alert"),
        httpx.Client(verify=_client_ctx(cert_dir, ssl.TLSVersion.TLSv1_1)) as c,
    ):
        c.get(f"https://127.0.0.1:{port}/healthz")


def test_cert_files_changed_on_disk_are_served_without_restart(server):
    _client, cert_dir, port = server
    first = ssl.get_server_certificate(("127.0.0.1", port))
    for name in ("tls.crt", "tls.key"):
        os.remove(cert_dir / name)
    from webhook.certs.files import ensure_cert_dir

    ensure_cert_dir(cert_dir, ["localhost", "127.0.0.1"])  # new leaf from the same CA
    deadline = time.monotonic() + 10
    while ssl.get_server_certificate(("127.0.0.1", port)) == first:
        assert time.monotonic() < deadline, "server kept the old certificate"
        time.sleep(0.2)
    # The new certificate verifies against the same CA, on a fresh connection.
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))) as c:
        assert c.get(f"https://127.0.0.1:{port}/healthz").status_code == 200


def test_certs_reused_across_restarts(tmp_path):
    with serve_standalone(tmp_path):
        ca = (tmp_path / "ca.crt").read_bytes()
        crt = (tmp_path / "tls.crt").read_bytes()
    with serve_standalone(tmp_path):
        assert (tmp_path / "ca.crt").read_bytes() == ca and (tmp_path / "tls.crt").read_bytes() == crt
    assert oct((tmp_path / "tls.key").stat().st_mode & 0o777) == "0o600"


def test_key_type_and_ca_validity_flags(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    with serve_standalone(tmp_path, "--key-type", "rsa-2048", "--ca-validity", "8760h"):
        ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
        leaf = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    assert isinstance(ca.public_key(), rsa.RSAPublicKey) and isinstance(leaf.public_key(), rsa.RSAPublicKey)
    days = (ca.not_valid_after_utc - ca.not_valid_before_utc).days
    assert 364 <= days <= 366


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--key-type", "dsa"), "--key-type"), (("--ca-validity", "1h"), "--ca-validity: expected at least 24h"),
     (("--ca-validity", "soon"), "--ca-validity: expected a duration")],
)  # fmt: skip
def test_bad_key_flags_exit_2(tmp_path, args, message):
    import subprocess

    from helpers import BIN

    r = subprocess.run([str(BIN / "fsm-onboard"), "serve", "--standalone", "--cert-dir", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
