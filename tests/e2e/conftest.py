"""Fixtures for tests against a real kube-apiserver on loopback (see docs/dev-cluster.md).

`cluster` builds the control plane once (cached under ~/.cache/fsm-onboard), starts a private one in
a temporary state dir (so it never fights with a `make cluster-up` cluster) and stops it at the end.
FSM_ONBOARD_KUBECONFIG=<file> reuses a running control plane instead. If the control plane cannot be
built or started every test using it FAILS with the reason: these tests are never skipped.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import config as kube_config
from kubernetes.client import ApiClient

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dev import cluster as devcluster  # noqa: E402
from dev import pki  # noqa: E402

_STARTUP_TIMEOUT = float(os.environ.get("FSM_ONBOARD_CLUSTER_TIMEOUT", "180"))


@dataclass(frozen=True)
class E2ECluster:
    """A reachable control plane: its admin kubeconfig, URL and CA, and an ApiClient factory."""

    kubeconfig: Path
    server: str
    ca_file: Path
    owned: bool  # started by this session (and stopped at its end)
    client_cert: Path | None = None  # admin client certificate, when the kubeconfig uses one
    client_key: Path | None = None

    def api_client(self) -> ApiClient:
        """A fresh ApiClient authenticated as cluster admin (close it, or use it as a context manager)."""
        return kube_config.new_client_from_config(config_file=str(self.kubeconfig))

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the apiserver's CA and presents the admin client certificate (if any)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if self.client_cert and self.client_key:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


@dataclass(frozen=True)
class TLSFiles:
    """A private CA plus a serving certificate for 127.0.0.1/localhost, written to files."""

    ca_pem: bytes
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


def _kubeconfig_json(path: Path) -> str:
    text = path.read_text()
    try:
        json.loads(text)
        return text
    except ValueError:
        import yaml  # a kubeconfig written by kubectl/kind is YAML

        return json.dumps(yaml.safe_load(text))


def _from_kubeconfig(path: Path, tmp: Path) -> E2ECluster:
    """Describe an already running control plane from its kubeconfig (current context)."""
    problem: str | None = None
    try:
        doc = json.loads(_kubeconfig_json(path))
        ctx_name = doc["current-context"]
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cl = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        server = cl["server"]
    except (OSError, ValueError, KeyError, StopIteration) as e:
        problem = repr(e)
    if problem is not None:
        pytest.fail(f"FSM_ONBOARD_KUBECONFIG={path}: not a usable kubeconfig ({problem})", pytrace=False)
    if "certificate-authority-data" in cl:
        ca_file = tmp / "ca.crt"
        ca_file.write_bytes(base64.b64decode(cl["certificate-authority-data"]))
    elif "certificate-authority" in cl:
        ca_file = (path.parent / cl["certificate-authority"]).resolve()
    else:
        pytest.fail(f"FSM_ONBOARD_KUBECONFIG={path}: cluster {ctx['cluster']!r} has no CA", pytrace=False)
    user: dict[str, str] = next((u["user"] for u in doc.get("users", []) if u["name"] == ctx.get("user")), {})
    cert = key = None
    if "client-certificate-data" in user and "client-key-data" in user:
        cert, key = tmp / "client.crt", tmp / "client.key"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        key.chmod(0o600)
    elif "client-certificate" in user and "client-key" in user:
        cert, key = path.parent / user["client-certificate"], path.parent / user["client-key"]
    return E2ECluster(
        kubeconfig=path, server=server, ca_file=ca_file, owned=False, client_cert=cert, client_key=key
    )


def _check_ready(c: E2ECluster) -> None:
    try:
        with urllib.request.urlopen(f"{c.server}/readyz", context=c.ssl_context(), timeout=10) as resp:
            if resp.status == 200:
                return
            reason = f"HTTP {resp.status}"
    except OSError as e:
        reason = str(e)
    pytest.fail(f"control plane at {c.server} ({c.kubeconfig}) is not ready: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ECluster]:
    """A ready kube-apiserver + etcd + kube-controller-manager on loopback for the whole session."""
    existing = os.environ.get("FSM_ONBOARD_KUBECONFIG")
    if existing:
        c = _from_kubeconfig(Path(existing).absolute(), tmp_path_factory.mktemp("reused-cluster"))
        _check_ready(c)
        yield c
        return
    state = tmp_path_factory.mktemp("controlplane")
    layout = devcluster.Layout(state_dir=state / "cluster", kubeconfig=state / "kubeconfig")
    problem: str | None = None
    try:
        started, _ = devcluster.up(layout, timeout=_STARTUP_TIMEOUT)
    except devcluster.ClusterError as e:
        problem = str(e)
    if problem is not None:
        pytest.fail(f"cannot start the local control plane: {problem}", pytrace=False)
    c = E2ECluster(
        kubeconfig=started.kubeconfig,
        server=started.server,
        ca_file=started.ca_file,
        owned=True,
        client_cert=started.client_cert,
        client_key=started.client_key,
    )
    try:
        yield c
    finally:
        devcluster.down(layout)


@pytest.fixture(scope="session")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A CA and a 127.0.0.1 serving cert for local TLS servers the apiserver calls (webhooks)."""
    d = tmp_path_factory.mktemp("local-tls")
    ca = pki.new_ca("fsm-onboard-e2e-webhook-ca")
    leaf = pki.new_server_cert(ca, "127.0.0.1", ["127.0.0.1", "localhost"])
    (d / "ca.crt").write_bytes(ca.cert_pem)
    (d / "tls.crt").write_bytes(leaf.cert_pem)
    (d / "tls.key").write_bytes(leaf.key_pem)
    (d / "tls.key").chmod(0o600)
    return TLSFiles(ca_pem=ca.cert_pem, ca_file=d / "ca.crt", cert_file=d / "tls.crt", key_file=d / "tls.key")
