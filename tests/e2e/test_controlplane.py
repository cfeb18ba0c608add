"""The loopback control plane is a real one: RBAC, controllers, ServiceAccount admission and admission
webhooks served by a local process at https://127.0.0.1:<port>."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.e2e

LABEL = "e2e.fsm-onboard.io/mutated"


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll fn until it returns something truthy (bounded); fail naming what never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture
def api(cluster) -> Iterator[client.ApiClient]:
    with cluster.api_client() as c:
        yield c


@pytest.fixture
def namespace(api) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def _default_sa(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespaced_service_account("default", ns)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def _deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="example.invalid/app:1")]
                ),
            ),
        ),
    )


def test_readyz_with_fixture_ca_and_kubeconfig(cluster):
    with urllib.request.urlopen(f"{cluster.server}/readyz", context=cluster.ssl_context(), timeout=10) as r:
        assert r.status == 200
        assert r.read() == b"ok"
    assert cluster.server.startswith("https://127.0.0.1:")
    assert cluster.kubeconfig.is_file()


def test_new_namespace_gets_default_serviceaccount_and_root_ca(api, namespace):
    core = client.CoreV1Api(api)
    wait_for("ServiceAccount default", lambda: _default_sa(core, namespace))
    cm = wait_for(
        "ConfigMap kube-root-ca.crt",
        lambda: (
            core.list_namespaced_config_map(namespace, field_selector="metadata.name=kube-root-ca.crt").items
        ),
    )
    assert "BEGIN CERTIFICATE" in cm[0].data["ca.crt"]


def test_deployment_creates_three_pending_pods(api, namespace):
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    wait_for("ServiceAccount default", lambda: _default_sa(core, namespace))
    apps.create_namespaced_deployment(namespace, _deployment("web", 3))

    pods = wait_for(
        "3 Pods from the Deployment",
        lambda: (lambda items: items if len(items) == 3 else None)(
            core.list_namespaced_pod(namespace, label_selector="app=web").items
        ),
    )
    rs = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].kind == "Deployment"
    for pod in pods:
        assert pod.status.phase == "Pending"  # no kubelet, no scheduler
        assert pod.spec.node_name is None
        assert pod.metadata.owner_references[0].name == rs[0].metadata.name
        # ServiceAccount admission ran: default SA and the projected token volume
        assert pod.spec.service_account_name == "default"
        assert any(v.name.startswith("kube-api-access-") for v in pod.spec.volumes)


class _MutatingHandler(BaseHTTPRequestHandler):
    """Answers AdmissionReview v1 with a JSONPatch adding LABEL to the object."""

    seen: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        review = json.loads(body)
        request = review["request"]
        self.server.seen.append(request)  # type: ignore[attr-defined]
        labels = request["object"].get("metadata", {}).get("labels")
        patch: list[dict[str, Any]]
        if labels:
            patch = [{"op": "add", "path": "/metadata/labels/" + LABEL.replace("/", "~1"), "value": "true"}]
        else:
            patch = [{"op": "add", "path": "/metadata/labels", "value": {LABEL: "true"}}]
        out = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": request["uid"],
                "allowed": True,
                "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
            },
        }
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_server(local_tls) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MutatingHandler)
    server.seen = []  # type: ignore[attr-defined]
    server.socket = local_tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_mutating_webhook_on_loopback_patches_stored_pods(api, namespace, webhook_server, local_tls):
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    adm = client.AdmissionregistrationV1Api(api)
    port = webhook_server.server_address[1]
    name = f"e2e-label-{namespace}"
    adm.create_mutating_webhook_configuration(
        client.V1MutatingWebhookConfiguration(
            metadata=client.V1ObjectMeta(name=name),
            webhooks=[
                client.V1MutatingWebhook(
                    name="label.e2e.fsm-onboard.io",
                    client_config=client.AdmissionregistrationV1WebhookClientConfig(
                        url=f"https://127.0.0.1:{port}/mutate",
                        ca_bundle=base64.b64encode(local_tls.ca_pem).decode(),
                    ),
                    rules=[
                        client.V1RuleWithOperations(
                            api_groups=[""], api_versions=["v1"], operations=["CREATE"], resources=["pods"]
                        )
                    ],
                    namespace_selector=client.V1LabelSelector(
                        match_labels={"kubernetes.io/metadata.name": namespace}
                    ),
                    failure_policy="Fail",
                    side_effects="None",
                    admission_review_versions=["v1"],
                    timeout_seconds=10,
                )
            ],
        )
    )
    try:
        wait_for("ServiceAccount default", lambda: _default_sa(core, namespace))
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="direct"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="example.invalid/app:1")]),
        )
        # The apiserver picks up new webhook configurations asynchronously: dry-run until it calls us.
        wait_for(
            "the apiserver to call the webhook",
            lambda: (
                LABEL in (core.create_namespaced_pod(namespace, pod, dry_run="All").metadata.labels or {})
            ),
        )
        core.create_namespaced_pod(namespace, pod)
        stored = core.read_namespaced_pod("direct", namespace)
        assert stored.metadata.labels == {LABEL: "true"}

        # Pods the ReplicaSet controller creates go through the same admission chain.
        apps.create_namespaced_deployment(namespace, _deployment("hooked", 1))
        pods = wait_for(
            "the Deployment's Pod",
            lambda: core.list_namespaced_pod(namespace, label_selector="app=hooked").items,
        )
        assert pods[0].metadata.labels[LABEL] == "true"
        assert pods[0].metadata.labels["app"] == "hooked"
        users = {r["userInfo"]["username"] for r in webhook_server.seen}
        assert "system:serviceaccount:kube-system:replicaset-controller" in users
        assert all(r["kind"] == {"group": "", "version": "v1", "kind": "Pod"} for r in webhook_server.seen)
    finally:
        adm.delete_mutating_webhook_configuration(name)


# --- the dev/cluster and dev/build.sh commands ------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def _pids(state_dir: Path) -> list[int]:
    doc = json.loads((state_dir / "state.json").read_text())
    return [p["pid"] for p in doc["processes"]]


def test_cluster_cli_up_is_idempotent_and_down_stops_what_it_started(cluster, tmp_path):
    # `cluster` first: binaries are built, so `up` only starts processes.
    state, kubeconfig = tmp_path / "cluster", tmp_path / "kubeconfig"
    opts = ("--state-dir", str(state), "--kubeconfig", str(kubeconfig))
    first = _run("dev/cluster", "up", *opts)
    try:
        assert first.returncode == 0, first.stderr
        assert "up in" in first.stderr
        pids = _pids(state)
        assert len(pids) == 3 and all(Path(f"/proc/{p}").exists() for p in pids)
        doc = json.loads(kubeconfig.read_text())
        assert doc["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")

        second = _run("dev/cluster", "up", *opts)
        assert second.returncode == 0, second.stderr
        assert "already up" in second.stderr
        assert _pids(state) == pids

        status = _run("dev/cluster", "status", *opts)
        assert status.returncode == 0 and json.loads(status.stdout)["state"] == "up"
    finally:
        stopped = _run("dev/cluster", "down", *opts)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped kube-controller-manager" in stopped.stderr
    assert not state.exists() and not kubeconfig.exists()
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split(") ")[1][0] == "Z"
    again = _run("dev/cluster", "down", *opts)
    assert again.returncode == 0 and "not running" in again.stderr
    down_status = _run("dev/cluster", "status", *opts)
    assert down_status.returncode == 1 and json.loads(down_status.stdout)["state"] == "down"


def test_cluster_cli_names_a_taken_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = _run("dev/cluster", "up", "--state-dir", str(tmp_path / "c"), "--apiserver-port", str(port))
    assert res.returncode == 2
    assert f"--apiserver-port: port {port} on 127.0.0.1 is already in use" in res.stderr
    assert "Traceback" not in res.stderr


def test_build_script_says_when_go_is_missing(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FSM_ONBOARD_CACHE": str(tmp_path / "cache")}
    if shutil.which("go", path=env["PATH"]):
        pytest.fail("this test needs a PATH without go; /usr/bin or /bin has one")
    res = _run("dev/build.sh", "etcd", env=env)
    assert res.returncode == 1
    assert "Go is not installed or not on PATH" in res.stderr
    assert not (tmp_path / "cache" / "bin").exists() or not any((tmp_path / "cache" / "bin").iterdir())
