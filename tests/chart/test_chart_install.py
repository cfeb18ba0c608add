"""The chart against a real kube-apiserver (dev/cluster on loopback): `helm install` is accepted, and
the server, run with the chart's exact command line as the chart's ServiceAccount (a real token, so
the chart's RBAC is what authorizes it), starts, registers its webhook and injects a pod — proof that
the least-privilege rules are also enough. SubjectAccessReviews check what stays out of reach.

A private control plane is started for this module (~5 s) unless FSM_ONBOARD_KUBECONFIG names a
running one. If it cannot be started the tests FAIL with the reason; they are never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fsm-onboard"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dev import cluster as devcluster  # noqa: E402

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Release:
    kubeconfig: Path
    namespace: str
    mesh: str
    manifest: list[dict[str, Any]]

    def api(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    existing = os.environ.get("FSM_ONBOARD_KUBECONFIG")
    if existing:
        yield Path(existing).absolute()
        return
    state = tmp_path_factory.mktemp("chart-controlplane")
    layout = devcluster.Layout(state_dir=state / "cluster", kubeconfig=state / "kubeconfig")
    problem: str | None = None
    try:
        started, _ = devcluster.up(layout, timeout=180)
    except devcluster.ClusterError as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(f"cannot start the local control plane: {problem}", pytrace=False)
    try:
        yield started.kubeconfig
    finally:
        devcluster.down(layout)


@pytest.fixture(scope="module")
def release(helm: Any, kubeconfig: Path) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    rel = Release(kubeconfig, f"chart-{suffix}", f"chart{suffix}", [])
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    args = ["install", "fsm-onboard", str(CHART), "-n", rel.namespace, "--create-namespace"]
    args += ["--set", f"meshName={rel.mesh}", "--wait=false"]
    res = subprocess.run(
        [str(helm.binary), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if res.returncode != 0:
        pytest.fail(f"helm {' '.join(args)}: {res.stderr}", pytrace=False)
    out = subprocess.run(
        [str(helm.binary), "get", "manifest", "fsm-onboard", "-n", rel.namespace],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    rel = Release(kubeconfig, rel.namespace, rel.mesh, [d for d in yaml.safe_load_all(out) if d])
    try:
        yield rel
    finally:
        subprocess.run(
            [str(helm.binary), "uninstall", "fsm-onboard", "-n", rel.namespace, "--wait=false"],
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        from kubernetes import client

        with rel.api() as api:
            for call in (
                lambda: client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(
                    f"fsm-webhook-{rel.mesh}"
                ),
                lambda: client.CoreV1Api(api).delete_namespace(f"{rel.namespace}-app"),
                lambda: client.CoreV1Api(api).delete_namespace(rel.namespace),
            ):
                with contextlib.suppress(client.ApiException):
                    call()


def test_install_is_accepted_by_the_api_server(release: Release) -> None:
    from kubernetes import client

    with release.api() as api:
        crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("meshconfigs.config.flomesh.io")
        assert any(c.type == "Established" and c.status == "True" for c in crd.status.conditions)
        mc = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "config.flomesh.io", "v1alpha3", release.namespace, "meshconfigs", "fsm-mesh-config"
        )
        assert mc["spec"]["traffic"]["interceptionMode"] == "iptables"
        dep = client.AppsV1Api(api).read_namespaced_deployment("fsm-onboard", release.namespace)
        assert dep.spec.template.spec.security_context.run_as_user == 65532
        svc = client.CoreV1Api(api).read_namespaced_service("fsm-onboard-webhook", release.namespace)
        assert svc.spec.ports[0].port == 443


def _sa_kubeconfig(release: Release, path: Path) -> Path:
    """A kubeconfig authenticating as the chart's ServiceAccount with a bound token."""
    from kubernetes import client

    with release.api() as api:
        token = client.CoreV1Api(api).create_namespaced_service_account_token(
            "fsm-onboard",
            release.namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
            ),
        )
    doc = yaml.safe_load(release.kubeconfig.read_text())
    doc["users"] = [{"name": "fsm-onboard-sa", "user": {"token": token.status.token}}]
    for ctx in doc["contexts"]:
        ctx["context"]["user"] = "fsm-onboard-sa"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_argv(release: Release, tmp: Path, port: int) -> list[str]:
    """The Deployment's command line, with the pod's paths mapped to tmp and the port to a free one."""
    dep = next(d for d in release.manifest if d["kind"] == "Deployment")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    cm = next(d for d in release.manifest if d["kind"] == "ConfigMap")
    (tmp / "templates").mkdir()
    for name, text in cm["data"].items():
        (tmp / "templates" / name).write_text(text)
    mapping = {
        "/var/run/fsm-onboard/certs": str(tmp / "certs"),
        "/etc/fsm-onboard/templates": str(tmp / "templates"),
        "9090": str(port),
    }
    argv = [mapping.get(a, a) for a in container["command"] + container["args"]]
    argv[0] = str(Path(sys.executable).parent / argv[0])
    return argv


def _wait_ready(proc: subprocess.Popen[str], port: int, log: Path, timeout: float = 60.0) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"fsm-onboard serve exited {proc.returncode}:\n{log.read_text()[-3000:]}", pytrace=False
            )
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"fsm-onboard serve not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}", pytrace=False
    )


def test_server_runs_with_exactly_the_charts_rbac(release: Release, tmp_path: Path) -> None:
    from kubernetes import client

    port = _free_port()
    argv = _server_argv(release, tmp_path, port)
    # Out of the cluster: a kubeconfig (the SA's token) and a URL instead of the Service.
    argv += ["--kubeconfig", str(_sa_kubeconfig(release, tmp_path / "sa.kubeconfig"))]
    argv += ["--webhook-url", f"https://127.0.0.1:{port}", "--host", "127.0.0.1", "--log-level", "info"]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        _wait_ready(proc, port, log)
        with release.api() as api:
            core = client.CoreV1Api(api)
            mwc = client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration(
                f"fsm-webhook-{release.mesh}"
            )
            assert mwc.webhooks[0].failure_policy == "Fail" and mwc.webhooks[0].timeout_seconds == 10
            assert core.read_namespaced_secret("fsm-ca-bundle", release.namespace).data
            app_ns = f"{release.namespace}-app"
            core.create_namespace(
                {
                    "metadata": {
                        "name": app_ns,
                        "labels": {"flomesh.io/monitored-by": release.mesh},
                        "annotations": {"flomesh.io/sidecar-injection": "enabled"},
                    }
                }
            )
            pod = None
            deadline = time.monotonic() + 20  # the server's namespace informer must see the new namespace
            while time.monotonic() < deadline:
                pod = core.create_namespaced_pod(
                    app_ns,
                    {
                        "metadata": {"generateName": "app-"},
                        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
                    },
                )
                if any(c.name == "sidecar" for c in pod.spec.containers):
                    break
                time.sleep(0.5)
            assert pod is not None and [c.name for c in pod.spec.containers] == ["app", "sidecar"]
            assert [c.name for c in pod.spec.init_containers] == ["fsm-init"]
            uid = pod.metadata.labels["fsm-proxy-uuid"]
            secret = core.read_namespaced_secret(f"sidecar-bootstrap-config-{uid}", app_ns)
            assert secret.data
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "forbidden" not in text.lower(), text[-3000:]


def _allowed(api: Any, ns: str, **attrs: str) -> bool:
    from kubernetes import client

    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{ns}:fsm-onboard",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                "resourceAttributes": attrs,
            },
        }
    )
    return bool(review.status.allowed)


def test_what_stays_out_of_reach(release: Release) -> None:
    ns, mesh = release.namespace, release.mesh
    adm = "admissionregistration.k8s.io"
    allowed = [
        {
            "verb": "update",
            "group": adm,
            "resource": "mutatingwebhookconfigurations",
            "name": f"fsm-webhook-{mesh}",
        },
        {
            "verb": "delete",
            "group": adm,
            "resource": "validatingwebhookconfigurations",
            "name": f"fsm-validator-{mesh}",
        },
        {"verb": "update", "resource": "secrets", "namespace": ns, "name": "fsm-ca-bundle"},
        {"verb": "create", "resource": "secrets", "namespace": "anywhere"},
        {
            "verb": "get",
            "group": "apiextensions.k8s.io",
            "resource": "customresourcedefinitions",
            "name": "meshconfigs.config.flomesh.io",
        },
        {"verb": "create", "group": "coordination.k8s.io", "resource": "leases", "namespace": ns},
    ]
    denied = [
        {
            "verb": "update",
            "group": adm,
            "resource": "mutatingwebhookconfigurations",
            "name": "someone-elses-webhook",
        },
        {
            "verb": "delete",
            "group": adm,
            "resource": "validatingwebhookconfigurations",
            "name": "fsm-validator-othermesh",
        },
        {
            "verb": "get",
            "group": "apiextensions.k8s.io",
            "resource": "customresourcedefinitions",
            "name": "other.example.com",
        },
        {
            "verb": "delete",
            "group": "apiextensions.k8s.io",
            "resource": "customresourcedefinitions",
            "name": "meshconfigs.config.flomesh.io",
        },
        {"verb": "update", "resource": "secrets", "namespace": "app", "name": "anything"},
        {"verb": "update", "resource": "secrets", "namespace": ns, "name": "some-other-secret"},
        {"verb": "delete", "resource": "namespaces", "name": "kube-system"},
        {"verb": "create", "resource": "pods", "namespace": "app"},
        {"verb": "update", "group": "config.flomesh.io", "resource": "meshconfigs", "namespace": ns},
        {"verb": "create", "group": "coordination.k8s.io", "resource": "leases", "namespace": "kube-system"},
        {"verb": "create", "group": "rbac.authorization.k8s.io", "resource": "clusterrolebindings"},
    ]
    with release.api() as api:
        for attrs in allowed:
            assert _allowed(api, ns, **attrs), (
                f"denied but needed: {shlex.join(f'{k}={v}' for k, v in attrs.items())}"
            )
        for attrs in denied:
            assert not _allowed(api, ns, **attrs), (
                f"allowed but not needed: {shlex.join(f'{k}={v}' for k, v in attrs.items())}"
            )
