"""Certificates against the real kube-apiserver (the session `cluster` fixture).

- replicas started together agree on one CA (create-if-absent, 409 → read back);
- an admission issues the proxy bootstrap cert and stores the bootstrap Secret (content, CN);
- MeshCertManager sets the webhook configurations' caBundle and follows the CA Secret;
- a full CA rotation keeps every admission (through the API server) and every proxy-to-repo mTLS
  handshake working.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from helpers import TLSServer
from kubernetes import client

from bench.certs import PATH, Recorder, ThreadedServer, admission_app, mutating_webhook
from webhook.certs import kube
from webhook.certs.bundle import Bundle
from webhook.certs.ca import CA, load_cert_pem
from webhook.certs.errors import CertError
from webhook.certs.issuer import Issuer, parse_proxy_cn
from webhook.certs.leaf import chains_to, common_name_of
from webhook.certs.manager import MeshCertManager
from webhook.certs.pool import KeyPool
from webhook.certs.reload import CertReloader, server_ssl_context

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(what: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
            if v:
                return v
        except client.ApiException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def apis(cluster: Any) -> Iterator[tuple[client.CoreV1Api, client.AdmissionregistrationV1Api]]:
    api_client = cluster.api_client()
    try:
        yield client.CoreV1Api(api_client), client.AdmissionregistrationV1Api(api_client)
    finally:
        api_client.close()


@pytest.fixture
def namespaces(apis: tuple[client.CoreV1Api, Any]) -> Iterator[Callable[[str], str]]:
    core = apis[0]
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        made.append(name)
        return name

    yield make
    for n in made:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(n)


def secret_data(core: client.CoreV1Api, ns: str, name: str) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (core.read_namespaced_secret(name, ns).data or {}).items()}


def openssl_verify(ca_pem: bytes, cert_pem: bytes, purpose: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "ca.pem").write_bytes(ca_pem)
        (Path(d) / "leaf.pem").write_bytes(cert_pem)
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", f"{d}/ca.pem", "-purpose", purpose, f"{d}/leaf.pem"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert out.returncode == 0, out.stdout + out.stderr


# --- 1. replicas agree on one CA ---

RACER = """
import sys, time
from webhook.certs import kube
core, _ = kube.apis_from_kubeconfig(sys.argv[1])
go = float(sys.argv[3])
while time.time() < go:
    time.sleep(0.001)
print(kube.ensure_ca_secret(core, sys.argv[2]).fingerprint)
"""


def test_replicas_started_together_end_with_one_ca(cluster: Any, apis: Any, namespaces: Any) -> None:
    core = apis[0]
    ns = namespaces("certs-race")
    go = time.time() + 3.0  # every process is imported and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(cluster.kubeconfig), ns, str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out.strip())
    stored = kube.read_ca_state(core, ns)
    assert stored is not None
    assert set(outs) == {stored[0].signing.fingerprint}
    data = secret_data(core, ns, "fsm-ca-bundle")
    assert set(data) == {"ca.crt", "private.key"}
    assert "EC" in type(load_cert_pem(data["ca.crt"]).public_key()).__name__  # ECDSA by default


def test_byo_ca_from_secret_and_mismatch_is_clear(apis: Any, namespaces: Any) -> None:
    core = apis[0]
    ns = namespaces("certs-byo")
    mine = CA.generate(key_type="rsa-2048", common_name="my corp CA")
    kube.create_secret(core, ns, "my-ca", {"tls.crt": mine.cert_pem, "tls.key": mine.key_pem})
    byo = kube.load_ca_from_secret(core, ns, "my-ca")
    assert kube.ensure_ca_secret(core, ns, byo=byo).fingerprint == mine.fingerprint
    assert kube.ensure_ca_secret(core, ns).fingerprint == mine.fingerprint  # later replicas read it
    with pytest.raises(CertError, match="holds a different CA"):
        kube.ensure_ca_secret(core, ns, byo=CA.generate())
    with pytest.raises(CertError, match=r"Secret .*/absent: API server answered 404"):
        kube.load_ca_from_secret(core, ns, "absent")


# --- 2. bootstrap Secret through a real admission ---


@pytest.fixture
def pool() -> Iterator[KeyPool]:
    p = KeyPool(size=32).start()
    try:
        yield p
    finally:
        p.stop()


def default_sa(core: client.CoreV1Api, ns: str) -> None:
    wait_for(f"ServiceAccount {ns}/default", lambda: core.read_namespaced_service_account("default", ns))


def pod(name: str, sa: str | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            service_account_name=sa,
            containers=[client.V1Container(name="app", image="example.invalid/app:1")],
        ),
    )


def test_admission_writes_bootstrap_secret(apis: Any, namespaces: Any, pool: KeyPool, tmp_path: Path) -> None:
    core, adm = apis
    mesh, app = namespaces("certs-mesh"), namespaces("certs-app")
    mgr = MeshCertManager.from_api_client(
        core.api_client, mesh, cert_dir=tmp_path, hosts=["127.0.0.1"], key_pool=pool
    )
    issuer = mgr.start_sync()
    srv = ThreadedServer(admission_app(lambda: issuer, core, Recorder()), mgr.files.cert, mgr.files.key)
    hook = f"certs-e2e-{app}"
    adm.create_mutating_webhook_configuration(
        mutating_webhook(hook, f"https://127.0.0.1:{srv.port}{PATH}", mgr.files.ca.read_bytes(), app)
    )
    try:
        core.create_namespaced_service_account(
            app, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="bookbuyer"))
        )
        default_sa(core, app)
        time.sleep(1)  # webhook configuration informer in the API server
        created = core.create_namespaced_pod(app, pod("bookbuyer", sa="bookbuyer"))
        proxy = created.metadata.labels["fsm-proxy-uuid"]
        data = secret_data(core, app, f"sidecar-bootstrap-config-{proxy}")
        assert set(data) == {"repo_cert.pem", "repo_key.pem", "cacert.pem"}
        leaf = load_cert_pem(data["repo_cert.pem"])
        assert common_name_of(leaf) == f"{proxy}.sidecar.bookbuyer.{app}.cluster.local"
        assert parse_proxy_cn(common_name_of(leaf)) == (proxy, "bookbuyer", app)
        ca_pem = secret_data(core, mesh, "fsm-ca-bundle")["ca.crt"]
        assert data["cacert.pem"] == ca_pem
        assert chains_to(leaf, load_cert_pem(ca_pem))
        openssl_verify(ca_pem, data["repo_cert.pem"], "sslclient")
        assert data["repo_key.pem"].startswith(b"-----BEGIN PRIVATE KEY-----")
        # dryRun: admitted, no Secret
        before = len(kube.list_bootstrap_secrets(core))
        core.create_namespaced_pod(app, pod("dry"), dry_run="All")
        assert len(kube.list_bootstrap_secrets(core)) == before
    finally:
        adm.delete_mutating_webhook_configuration(hook)
        srv.close()


# --- 3 + 4. caBundle follows the CA; full rotation without a failed admission or handshake ---


class RepoServer(TLSServer):
    """A Pipy-repo stand-in: TLS with client certs required; answers the client's CN."""

    def __init__(self, cert: Path, key: Path, ca: Path) -> None:
        ctx = server_ssl_context(cert, key, client_ca=ca)
        self.reloader = CertReloader(ctx, cert, key, client_ca=ca)
        super().__init__(ctx)

    def respond(self, tls: ssl.SSLSocket) -> None:
        der = tls.getpeercert(binary_form=True)
        cn = common_name_of(x509.load_der_x509_certificate(der)) if der else ""
        parse_proxy_cn(cn)
        tls.sendall(cn.encode())

    def close(self) -> None:
        super().close()
        self.reloader.stop()


class Proxy:
    """What a Pipy sidecar keeps in memory from its bootstrap Secret when it starts."""

    def __init__(self, d: Path, data: dict[str, bytes]) -> None:
        d.mkdir(parents=True)
        for k, v in data.items():
            (d / k).write_bytes(v)
        self.ctx = ssl.create_default_context(cafile=str(d / "cacert.pem"))
        self.ctx.load_cert_chain(str(d / "repo_cert.pem"), str(d / "repo_key.pem"))
        self.cn = common_name_of(load_cert_pem(data["repo_cert.pem"]))

    def handshake(self, port: int) -> None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as s,
            self.ctx.wrap_socket(s, server_hostname="127.0.0.1") as t,
        ):
            got = t.recv(4096).decode()
            assert got == self.cn, (got, self.cn)


def test_ca_rotation_keeps_admissions_and_repo_handshakes(
    apis: Any, namespaces: Any, pool: KeyPool, tmp_path: Path
) -> None:
    core, adm = apis
    mesh, app = namespaces("certs-mesh"), namespaces("certs-app")
    hook = f"certs-rot-{app}"
    # the webhook configuration exists (installed by the chart) with a stale caBundle
    adm.create_mutating_webhook_configuration(
        mutating_webhook(hook, "https://127.0.0.1:1/unused", CA.generate().cert_pem, app)
    )
    webhook = MeshCertManager(
        core,
        adm,
        mesh,
        cert_dir=tmp_path / "webhook",
        hosts=["127.0.0.1", "localhost"],
        key_pool=pool,
        mutating=[hook],
    )
    repo = MeshCertManager(core, adm, mesh, cert_dir=tmp_path / "repo", hosts=["127.0.0.1"], key_pool=pool)
    issuer = webhook.start_sync()
    repo.start_sync()
    got = adm.read_mutating_webhook_configuration(hook).webhooks[0].client_config.ca_bundle
    assert base64.b64decode(got) == webhook.files.ca.read_bytes() == Bundle.of([issuer.ca.cert]).pem

    rec = Recorder()
    srv = ThreadedServer(admission_app(lambda: issuer, core, rec), webhook.files.cert, webhook.files.key)
    obj = adm.read_mutating_webhook_configuration(hook)
    obj.webhooks[0].client_config.url = f"https://127.0.0.1:{srv.port}{PATH}"
    adm.replace_mutating_webhook_configuration(hook, obj)
    repo_srv = RepoServer(repo.files.cert, repo.files.key, repo.files.ca)
    for r in (srv.reloader, repo_srv.reloader):
        r.start(interval=0.05)
    for m in (webhook, repo):
        m.start(interval=0.1)

    default_sa(core, app)
    time.sleep(1.5)
    stop = threading.Event()
    admission_failures: list[str] = []
    handshake_failures: list[str] = []
    counts = {"pods": 0, "handshakes": 0}
    proxies: dict[str, Proxy] = {}
    gone: set[str] = set()
    lock = threading.Lock()

    def create_pods() -> None:
        i = 0
        while not stop.is_set() and i < 2000:  # bounded
            i += 1
            try:
                p = core.create_namespaced_pod(app, pod(f"p{i}"))
                assert "fsm-proxy-uuid" in p.metadata.labels
                counts["pods"] += 1
            except Exception as exc:
                admission_failures.append(f"pod {i}: {str(exc)[:300]}")
            time.sleep(0.05)

    def run_proxies() -> None:
        try:
            proxy_loop()
        except Exception as exc:  # a dead proxy thread must fail the test, not hide
            handshake_failures.append(f"proxy thread died: {type(exc).__name__}: {exc}")

    def proxy_loop() -> None:
        rounds = 0
        while not stop.is_set() and rounds < 5000:  # bounded
            rounds += 1
            for s in core.list_namespaced_secret(app).items:
                name = s.metadata.name
                if name.startswith("sidecar-bootstrap-config-") and name not in proxies and name not in gone:
                    data = {k: base64.b64decode(v) for k, v in s.data.items()}
                    with lock:
                        proxies[name] = Proxy(tmp_path / "proxies" / uuid.uuid4().hex, data)
            with lock:
                live = list(proxies.items())
            for name, px in live[-20:]:
                try:
                    px.handshake(repo_srv.port)
                    counts["handshakes"] += 1
                except Exception as exc:
                    handshake_failures.append(f"{name}: {type(exc).__name__}: {exc}")
            time.sleep(0.05)

    def restart_proxies() -> None:
        """`kubectl rollout restart`: old pods and their bootstrap Secrets go, new ones come."""
        for s in core.list_namespaced_secret(app).items:
            if s.metadata.name.startswith("sidecar-bootstrap-config-"):
                with lock:
                    gone.add(s.metadata.name)
                    proxies.pop(s.metadata.name, None)
                core.delete_namespaced_secret(s.metadata.name, app)

    threads = [threading.Thread(target=create_pods), threading.Thread(target=run_proxies)]
    for t in threads:
        t.start()
    cli_pool = KeyPool(size=8).start()
    try:
        old = issuer.ca
        cli_issuer = Issuer(old, cli_pool)
        time.sleep(2)

        def synced(phase: str) -> Callable[[], bool]:
            return lambda: all(m.state is not None and m.state.phase == phase for m in (webhook, repo))

        report = kube.rotate_ca(core, adm, mesh, "begin", issuer=cli_issuer, mutating=[hook])
        assert report.phase == "added"
        wait_for("replicas to trust both CAs", synced("added"))
        time.sleep(1)
        with pytest.raises(CertError, match=r"rotate-ca switch: .* may still use the old trust bundle"):
            kube.rotate_ca(core, adm, mesh, "switch", issuer=cli_issuer, mutating=[hook])
        restart_proxies()
        time.sleep(1)
        kube.rotate_ca(core, adm, mesh, "switch", issuer=cli_issuer, mutating=[hook])
        wait_for("replicas to sign with the new CA", synced("switched"))
        new = webhook.state.signing if webhook.state else None
        assert new is not None and new.fingerprint != old.fingerprint
        wait_for(
            "the webhook to serve a new-CA cert",
            lambda: srv.reloader.reloads >= 1 and repo_srv.reloader.reloads >= 1,
        )
        time.sleep(1)
        restart_proxies()
        time.sleep(1)
        report = kube.rotate_ca(core, adm, mesh, "finish", issuer=cli_issuer, mutating=[hook])
        assert report.phase == "steady"
        wait_for("replicas to drop the old CA", synced("steady"))
        # Pods admitted before this moment may carry the two-CA bundle of the switched phase.
        before_steady = {s.metadata.name for s in core.list_namespaced_secret(app).items}
        time.sleep(2)
        hooks = adm.read_mutating_webhook_configuration(hook).webhooks
        final_ca_bundle = base64.b64decode(hooks[0].client_config.ca_bundle)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        cli_pool.stop()
        for m in (webhook, repo):
            m.stop()
        srv.close()
        repo_srv.close()
        adm.delete_mutating_webhook_configuration(hook)

    assert admission_failures == [], admission_failures[:3]
    assert handshake_failures == [], handshake_failures[:3]
    assert repo_srv.errors == [], repo_srv.errors[:3]
    assert rec.failures == []
    assert counts["pods"] > 40 and counts["handshakes"] > 100, counts
    # the end state: only the new CA anywhere
    final = kube.read_ca_state(core, mesh)
    assert (
        final is not None and final[0].phase == "steady" and final[0].signing.fingerprint == new.fingerprint
    )
    assert final_ca_bundle == new.cert_pem
    served = load_cert_pem(webhook.files.cert.read_bytes())
    assert chains_to(served, new.cert)
    assert webhook.files.ca.read_bytes() == new.cert_pem
    after_steady = 0
    for s in kube.list_bootstrap_secrets(core):
        if s.metadata.namespace == app:
            d = {k: base64.b64decode(v) for k, v in s.data.items()}
            assert chains_to(load_cert_pem(d["repo_cert.pem"]), new.cert)
            assert new.cert_pem in d["cacert.pem"]
            if s.metadata.name not in before_steady:
                after_steady += 1
                assert d["cacert.pem"] == new.cert_pem, "a pod admitted after finish still trusts the old CA"
    assert after_steady > 0, "no pod was admitted after the rotation finished"
    print(json.dumps(counts | {"proxies_seen": len(proxies) + len(gone)}))


# --- 5. the commands, as a user runs them ---


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.certs.cli", "certs", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_cli_show_and_rotate_steps(cluster: Any, apis: Any, namespaces: Any, tmp_path: Path) -> None:
    core, adm = apis
    ns = namespaces("certs-cli")
    kc = str(cluster.kubeconfig)
    out = run_cli("show", "--kubeconfig", kc, "-n", ns)
    assert out.returncode == 0 and "no mesh CA yet" in out.stdout
    first = kube.ensure_ca_secret(core, ns)
    hook = f"certs-cli-{ns}"
    adm.create_mutating_webhook_configuration(
        mutating_webhook(hook, "https://127.0.0.1:1/x", first.cert_pem, ns)
    )
    try:
        out = run_cli("show", "--kubeconfig", kc, "-n", ns)
        assert out.returncode == 0, out.stderr
        assert "rotation phase: steady" in out.stdout and "key:      ECDSA P-256" in out.stdout

        mine = CA.generate(common_name="next CA")
        (tmp_path / "ca.crt").write_bytes(mine.cert_pem)
        (tmp_path / "ca.key").write_bytes(mine.key_pem)
        out = run_cli("rotate-ca", "begin", "--kubeconfig", kc, "-n", ns, "--mutating", hook,
                      "--ca-cert", str(tmp_path / "ca.crt"), "--ca-key", str(tmp_path / "ca.key"))  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "phase: added" in out.stdout and "webhook configurations patched: 1" in out.stdout
        got = base64.b64decode(
            adm.read_mutating_webhook_configuration(hook).webhooks[0].client_config.ca_bundle
        )
        assert Bundle.from_pem(got).fingerprints == (first.fingerprint, mine.fingerprint)
        out = run_cli("show", "--kubeconfig", kc, "-n", ns)
        assert "new CA (trusted, not signing yet): CN=next CA" in out.stdout

        out = run_cli("rotate-ca", "finish", "--kubeconfig", kc, "-n", ns)
        assert out.returncode == 2 and "'finish' needs 'switched'" in out.stderr

        out = run_cli("rotate-ca", "switch", "--kubeconfig", kc, "-n", ns, "--mutating", hook)
        assert out.returncode == 0, out.stderr
        out = run_cli("rotate-ca", "finish", "--kubeconfig", kc, "-n", ns, "--mutating", hook)
        assert out.returncode == 0, out.stderr
        got = base64.b64decode(
            adm.read_mutating_webhook_configuration(hook).webhooks[0].client_config.ca_bundle
        )
        assert got == mine.cert_pem
        state = kube.read_ca_state(core, ns)
        assert (
            state is not None
            and state[0].phase == "steady"
            and state[0].signing.fingerprint == mine.fingerprint
        )
    finally:
        adm.delete_mutating_webhook_configuration(hook)
