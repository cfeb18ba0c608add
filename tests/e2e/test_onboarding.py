"""Onboarding through a real kube-apiserver: `fsm-onboard serve --kubeconfig` registers itself and the
API server calls it for every pod (controller-manager turns Deployments into Pods through admission)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from helpers import BIN, serve_cluster

from webhook.kube.client import KubeError, connect, path_for
from webhook.kube.informer import Informer

pytestmark = pytest.mark.e2e
MESH_NS = "fsm-system"


def until(predicate, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def kube(cluster):
    k = connect(str(cluster.kubeconfig))
    yield k
    k.close()


@pytest.fixture(scope="module")
def webhook(cluster, kube, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("webhook")
    try:
        with serve_cluster(cluster.kubeconfig, workdir) as (port, ca):
            until(lambda: _registered(kube), 20, what="the MutatingWebhookConfiguration")
            yield {"port": port, "cert_dir": ca.parent, "log": workdir / "serve.log"}
    except RuntimeError as exc:
        pytest.fail(f"fsm-onboard serve did not start: {exc}")
    finally:
        with contextlib.suppress(KubeError):
            kube.delete(
                path_for(
                    "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", name="fsm-webhook-fsm"
                )
            )


def _registered(kube):
    try:
        kube.get(
            path_for(
                "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", name="fsm-webhook-fsm"
            )
        )
        return True
    except KubeError:
        return False


def make_ns(kube, onboard=True, annotations=None):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kube.create(path_for("v1", "namespaces"), {"metadata": {"name": name}})
    if onboard:
        r = subprocess.run(
            [str(BIN / "fsm-onboard"), "namespace", "add", name, "--kubeconfig", _kubeconfig(kube)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
    if annotations:
        kube.merge_patch(path_for("v1", "namespaces", name=name), {"metadata": {"annotations": annotations}})
    # The webhook reads namespaces from its informer: wait until it can have seen the label.
    until(
        lambda: kube.get(path_for("v1", "serviceaccounts", name))["items"], 30, what="default ServiceAccount"
    )
    time.sleep(0.3)
    return name


def _kubeconfig(kube):
    return os.environ["FSM_E2E_KUBECONFIG"]


@pytest.fixture(autouse=True)
def _kubeconfig_env(cluster, monkeypatch):
    monkeypatch.setenv("FSM_E2E_KUBECONFIG", str(cluster.kubeconfig))


def pod(name, annotations=None):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app:1",
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                }
            ]
        },
    }


def names(p, field="containers"):
    return [c["name"] for c in p["spec"].get(field) or []]


def test_deployment_pods_are_injected_and_own_their_bootstrap_secret(webhook, kube):
    ns = make_ns(kube)
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod("x")["spec"]},
        },
    }
    kube.create(path_for("apps/v1", "deployments", ns), dep)
    pods = until(
        lambda: (
            [p for p in kube.get(path_for("v1", "pods", ns))["items"]]
            if len(kube.get(path_for("v1", "pods", ns))["items"]) == 3
            else None
        ),
        60,
        what="3 pods",
    )
    for p in pods:
        assert names(p) == ["app", "sidecar"] and names(p, "initContainers") == ["fsm-init"]
        uid = p["metadata"]["labels"]["fsm-proxy-uuid"]
        assert p["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] == 15902
        secret_path = path_for("v1", "secrets", ns, f"sidecar-bootstrap-config-{uid}")
        secret = until(
            lambda path=secret_path: (s := kube.get(path))["metadata"].get("ownerReferences") and s,
            30,
            what="the Secret's ownerReference",
        )
        assert secret["metadata"]["ownerReferences"][0]["uid"] == p["metadata"]["uid"]
        assert {"bootstrap.yaml", "cacert.pem", "repo_cert.pem", "repo_key.pem"} <= set(secret["data"])
        bootstrap = base64.b64decode(secret["data"]["bootstrap.yaml"]).decode()
        assert f"{uid}.sidecar.default.{ns}.cluster.local" in bootstrap and "/ready" in bootstrap


def test_unlabelled_namespace_and_opt_out_are_untouched(webhook, kube):
    plain = make_ns(kube, onboard=False)
    stored = kube.create(path_for("v1", "pods", plain), pod("p", {"flomesh.io/sidecar-injection": "enabled"}))
    assert names(stored) == ["app"] and "initContainers" not in stored["spec"]
    onboarded = make_ns(kube)
    stored = kube.create(
        path_for("v1", "pods", onboarded), pod("q", {"flomesh.io/sidecar-injection": "disabled"})
    )
    assert names(stored) == ["app"] and "fsm-proxy-uuid" not in (stored["metadata"].get("labels") or {})


def test_bad_annotation_rejects_the_create_with_the_message(webhook, kube):
    ns = make_ns(kube)
    with pytest.raises(KubeError) as err:
        kube.create(
            path_for("v1", "pods", ns), pod("bad", {"flomesh.io/outbound-port-exclusion-list": "80,http"})
        )
    assert "flomesh.io/outbound-port-exclusion-list" in str(err.value) and "http" in str(err.value)
    with pytest.raises(KubeError) as err:
        kube.create(path_for("v1", "pods", ns), pod("bad2", {"flomesh.io/sidecar-injection": "sometimes"}))
    assert "sometimes" in str(err.value)


def test_server_side_dry_run_is_injected_but_creates_no_secret(webhook, kube):
    ns = make_ns(kube)
    got = kube.create(path_for("v1", "pods", ns), pod("dry"), params={"dryRun": "All"})
    assert names(got) == ["app", "sidecar"]
    uid = got["metadata"]["labels"]["fsm-proxy-uuid"]
    time.sleep(1)
    with pytest.raises(KubeError) as err:
        kube.get(path_for("v1", "secrets", ns, f"sidecar-bootstrap-config-{uid}"))
    assert err.value.not_found
    with pytest.raises(KubeError) as err:
        kube.get(path_for("v1", "pods", ns, "dry"))
    assert err.value.not_found


def test_meshconfig_change_applies_to_the_next_pod(webhook, kube):
    ns = make_ns(kube)
    mc_path = path_for("config.flomesh.io/v1alpha3", "meshconfigs", MESH_NS)
    image = f"registry.local/pipy:{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "config.flomesh.io/v1alpha3",
        "kind": "MeshConfig",
        "metadata": {"name": "fsm-mesh-config"},
        "spec": {"sidecar": {"sidecarImage": image, "logLevel": "debug"}},
    }
    try:
        current = kube.get(f"{mc_path}/fsm-mesh-config")
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        kube.replace(f"{mc_path}/fsm-mesh-config", body)
    except KubeError as exc:
        assert exc.not_found
        kube.create(mc_path, body)
    try:

        def sidecar_image():
            p = kube.create(path_for("v1", "pods", ns), pod("probe"), params={"dryRun": "All"})
            return next(c["image"] for c in p["spec"]["containers"] if c["name"] == "sidecar") == image

        until(sidecar_image, 10, 0.2, what="the new MeshConfig to apply")
        stored = kube.create(path_for("v1", "pods", ns), pod("after"))
        sidecar = next(c for c in stored["spec"]["containers"] if c["name"] == "sidecar")
        assert sidecar["image"] == image and "--log-level=debug" in sidecar["args"]
    finally:
        kube.delete(f"{mc_path}/fsm-mesh-config")


def test_deleted_or_edited_webhook_configuration_is_restored_within_2s(webhook, kube):
    path = path_for(
        "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", name="fsm-webhook-fsm"
    )
    before = kube.get(path)["webhooks"][0]
    kube.delete(path)
    started = time.monotonic()
    restored = until(
        lambda: _registered(kube) and kube.get(path), 2.0, 0.05, what="the configuration to come back"
    )
    assert time.monotonic() - started <= 2.0
    assert restored["webhooks"][0]["clientConfig"] == before["clientConfig"]
    edited = kube.get(path)
    edited["webhooks"][0]["failurePolicy"] = "Ignore"
    kube.replace(path, edited)
    until(
        lambda: kube.get(path)["webhooks"][0]["failurePolicy"] == "Fail",
        2.0,
        0.05,
        what="the edit to be undone",
    )


def test_webhook_metrics_and_readiness(webhook):
    ca = webhook["cert_dir"] / "ca.crt"
    import ssl

    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as c:
        base = f"https://127.0.0.1:{webhook['port']}"
        assert c.get(f"{base}/readyz").status_code == 200
        assert "fsm_onboard_admissions_total" in c.get(f"{base}/metrics").text


def test_informer_recovers_from_a_real_410(cluster, kube):
    """Compact etcd, then watch from a compacted version: the API server answers 410 Gone and the
    informer relists. (Events are not served from the apiserver's watch cache, so the 410 is real.)"""
    state = Path(cluster.kubeconfig).parent / "cluster" / "state.json"
    if not state.exists():
        pytest.fail(f"needs the etcd port from the local control plane's state file {state}")
    etcd = f"http://127.0.0.1:{json.loads(state.read_text())['ports']['etcd_client']}"
    ns = make_ns(kube, onboard=False)
    path = path_for("v1", "events", ns)
    seen = []
    inf = Informer(
        kube,
        path,
        name="e2e-events",
        on_event=lambda kind, obj: seen.append(obj["metadata"]["name"]),
        watch_timeout=30,
    ).start()
    try:
        assert inf.wait_synced(10)
        old_rv = inf.resource_version

        def event(name):
            return {
                "metadata": {"name": name},
                "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": ns},
                "reason": "Test",
                "message": "m",
                "type": "Normal",
            }

        for i in range(3):
            kube.create(path, event(f"before-{i}"))
        until(lambda: len(seen) >= 3, 10, what="events before compaction")
        rev = int(
            httpx.post(
                f"{etcd}/v3/kv/range", json={"key": base64.b64encode(b"/").decode(), "limit": 1}
            ).json()["header"]["revision"]
        )
        assert (
            httpx.post(f"{etcd}/v3/kv/compaction", json={"revision": rev, "physical": True}).status_code
            == 200
        )
        relists = inf.relists
        inf.restart_watch(old_rv)  # resume from a version etcd no longer has
        until(lambda: inf.relists > relists, 10, what="the informer to relist after 410")
        kube.create(path, event("after"))
        until(lambda: "after" in seen and inf.get(f"{ns}/after"), 10, what="an event after the relist")
        assert {f"before-{i}" for i in range(3)} <= {o["metadata"]["name"] for o in inf.items()}
    finally:
        inf.stop()


def run_cli(*args):
    return subprocess.run(
        [str(BIN / "fsm-onboard"), *args, "--kubeconfig", os.environ["FSM_E2E_KUBECONFIG"]],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_namespace_add_remove_list_and_refusals(kube):
    name = make_ns(kube, onboard=False)
    r = run_cli("namespace", "add", name, "--enable-metrics")
    assert r.returncode == 0, r.stderr
    got = kube.get(path_for("v1", "namespaces", name=name))["metadata"]
    assert got["labels"]["flomesh.io/monitored-by"] == "fsm"
    assert got["annotations"]["flomesh.io/sidecar-injection"] == "enabled"
    assert got["annotations"]["flomesh.io/metrics"] == "enabled"
    listed = run_cli("namespace", "list")
    assert any(line.split()[:4] == [name, "fsm", "enabled", "enabled"] for line in listed.stdout.splitlines())
    r = run_cli("namespace", "remove", name)
    assert r.returncode == 0, r.stderr
    got = kube.get(path_for("v1", "namespaces", name=name))["metadata"]
    assert "flomesh.io/monitored-by" not in got.get("labels", {})
    assert "flomesh.io/sidecar-injection" not in (got.get("annotations") or {})
    kube.merge_patch(
        path_for("v1", "namespaces", name=name), {"metadata": {"labels": {"flomesh.io/ignore": "true"}}}
    )
    r = run_cli("namespace", "add", name)
    assert r.returncode == 1 and "flomesh.io/ignore=true" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("namespace", "add", "no-such-namespace")
    assert r.returncode == 1 and "not found" in r.stderr


def test_denied_pods_of_a_deployment_leave_an_event_on_the_replicaset(webhook, kube):
    ns = make_ns(kube)
    template = {
        "metadata": {"labels": {"app": "bad"}, "annotations": {"flomesh.io/native-sidecar": "perhaps"}},
        "spec": pod("x")["spec"],
    }
    kube.create(
        path_for("apps/v1", "deployments", ns),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "bad"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "bad"}}, "template": template},
        },
    )

    def denial_event():
        events = kube.get(path_for("v1", "events", ns))["items"]
        return next((e for e in events if e["reason"] == "InjectionDenied"), None)

    event = until(denial_event, 30, 0.2, what="an InjectionDenied Event")
    assert event["involvedObject"]["kind"] == "ReplicaSet"
    assert "flomesh.io/native-sidecar" in event["message"] and "perhaps" in event["message"]
    ca = webhook["cert_dir"] / "ca.crt"
    import ssl

    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as c:
        text = c.get(f"https://127.0.0.1:{webhook['port']}/metrics").text
    assert 'fsm_onboard_events_total{reason="InjectionDenied"}' in text
    assert 'fsm_onboard_admissions_total{reason="invalid-annotation",result="denied"}' in text


def test_secret_of_a_pod_that_never_came_is_swept(kube):
    from webhook.kube.bootstrap import SecretOwners

    ns = make_ns(kube)
    orphan_uuid = str(uuid.uuid4())
    kube.create(
        path_for("v1", "secrets", ns),
        {
            "metadata": {
                "name": f"sidecar-bootstrap-config-{orphan_uuid}",
                "labels": {
                    "fsm-proxy-uuid": orphan_uuid,
                    "app.kubernetes.io/managed-by": "fsm-onboard",
                    "fsm-onboard.flomesh.io/source": "admission",
                },
            },
            "data": {},
        },
    )
    owners = SecretOwners(kube, orphan_grace=120)
    owners.pods.start()
    try:
        assert owners.pods.wait_synced(10)
        assert owners.sweep() == 0, "a young Secret must be kept: its pod may still be on its way"
        assert owners.sweep(now=time.time() + 300) >= 1
        with pytest.raises(KubeError) as err:
            kube.get(path_for("v1", "secrets", ns, f"sidecar-bootstrap-config-{orphan_uuid}"))
        assert err.value.not_found
    finally:
        owners.pods.stop()


def test_stale_namespace_cache_is_read_live(cluster, kube, tmp_path):
    """The API server only calls the webhook for namespaces its selector says are monitored; when the
    webhook's cache disagrees (labelled a moment ago) it reads the namespace live, off the event loop."""
    import asyncio

    from webhook.cluster import ClusterOptions, ClusterServer
    from webhook.inject import Context, load_templates
    from webhook.kube.webhookconfig import WebhookSettings

    name = make_ns(kube)  # labelled monitored-by=fsm
    options = ClusterOptions(mesh_name="fsm", mesh_namespace=MESH_NS, cert_dir=tmp_path, cert_hosts=[],
                             webhook=WebhookSettings("fsm", MESH_NS))  # fmt: skip
    server = ClusterServer(kube, options, load_templates(), Context())
    stale = {"metadata": {"name": name, "labels": {}}}
    fresh = {"metadata": {"name": name, "labels": {"flomesh.io/monitored-by": "fsm"}, "resourceVersion": "x"}}

    async def run():
        try:
            live = await server._refresh_namespace(name, stale)
            missing = await server._refresh_namespace(name, None)
            cached = await server._refresh_namespace(name, fresh)
            return live, missing, cached
        finally:
            await server.writer.aio().aclose()

    live, missing, cached = asyncio.run(run())
    assert live["metadata"]["labels"]["flomesh.io/monitored-by"] == "fsm" and live["metadata"]["uid"]
    assert missing["metadata"]["uid"] == live["metadata"]["uid"]
    assert cached is fresh, "a cached namespace that is monitored is used as is, with no API call"


def test_validator_rejects_a_bad_meshconfig_and_bad_namespace_annotations(webhook, kube):
    vpath = path_for(
        "admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", name="fsm-validator-fsm"
    )
    until(lambda: _exists(kube, vpath), 20, what="the ValidatingWebhookConfiguration")
    mc_path = path_for("config.flomesh.io/v1alpha3", "meshconfigs", MESH_NS)
    bad = {"apiVersion": "config.flomesh.io/v1alpha3", "kind": "MeshConfig", "metadata": {"name": "fsm-mesh-config"},
           "spec": {"traffic": {"enableEgress": "no"}, "sidecar": {"logLevel": "loud"}}}  # fmt: skip
    with pytest.raises(KubeError) as err:
        kube.create(mc_path, bad)
    message = str(err.value)
    assert (
        'spec.traffic.enableEgress: expected boolean, got "no"' in message
        and "spec.sidecar.logLevel" in message
    )
    ns = make_ns(kube)  # onboarded: the validator sees it
    with pytest.raises(KubeError) as err:
        kube.merge_patch(path_for("v1", "namespaces", name=ns),
                         {"metadata": {"annotations": {"flomesh.io/sidecar-injection": "sometimes"}}})  # fmt: skip
    assert "flomesh.io/sidecar-injection" in str(err.value) and "sometimes" in str(err.value)
    # A namespace outside the mesh is not this webhook's business.
    other = make_ns(kube, onboard=False)
    kube.merge_patch(
        path_for("v1", "namespaces", name=other), {"metadata": {"annotations": {"flomesh.io/metrics": "x"}}}
    )
    # Deleted → restored, like the mutating configuration.
    kube.delete(vpath)
    until(lambda: _exists(kube, vpath), 2.0, 0.05, what="the validating configuration to come back")


def _exists(kube, path):
    try:
        kube.get(path)
        return True
    except KubeError:
        return False


def test_offline_secret_shared_by_replicas_is_never_owned_or_swept(kube):
    """`fsm-onboard inject` gives a workload one Secret for all its replicas: the server must not make
    any one replica its owner (deleting that pod would delete every replica's config) nor sweep it."""
    from webhook.kube.bootstrap import SecretOwners

    ns = make_ns(kube, onboard=False)
    r = subprocess.run(
        [str(BIN / "fsm-onboard"), "inject", "-f", "-", "-n", ns],
        input=f"apiVersion: v1\nkind: Pod\nmetadata: {{name: one, namespace: {ns}}}\nspec: {{containers: [{{name: a, image: a}}]}}\n",
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    import yaml

    docs = list(yaml.safe_load_all(r.stdout))
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["metadata"]["labels"]["fsm-onboard.flomesh.io/source"] == "offline"
    shared = secret["metadata"]["labels"]["fsm-proxy-uuid"]
    kube.create(path_for("v1", "secrets", ns), secret)
    template = next(d for d in docs if d["kind"] == "Pod")
    for name in ("one", "two"):
        template["metadata"]["name"] = name
        kube.create(path_for("v1", "pods", ns), template)
    owners = SecretOwners(kube)
    owners.pods.start()
    try:
        assert owners.pods.wait_synced(10)
        for p in kube.get(path_for("v1", "pods", ns))["items"]:
            assert owners.own(p) is False
        stored = kube.get(path_for("v1", "secrets", ns, f"sidecar-bootstrap-config-{shared}"))
        assert not stored["metadata"].get("ownerReferences")
        owners.sweep(now=time.time() + 3600)
        kube.get(path_for("v1", "secrets", ns, f"sidecar-bootstrap-config-{shared}"))  # still there
    finally:
        owners.pods.stop()


def test_uninstall_removes_both_webhook_configurations(cluster, kube):
    from webhook.kube.webhookconfig import Registrar, WebhookSettings

    settings = WebhookSettings("uninstall-test", MESH_NS, url="https://127.0.0.1:1")
    for registrar in (
        Registrar.mutating(kube, settings, lambda: b"CA"),
        Registrar.validating(kube, settings, lambda: b"CA"),
    ):
        registrar.reconcile()
    r = subprocess.run([str(BIN / "fsm-onboard"), "uninstall", "--mesh-name", "uninstall-test",
                        "--kubeconfig", str(cluster.kubeconfig)], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 0, r.stderr
    for plural, name in (("mutatingwebhookconfigurations", "fsm-webhook-uninstall-test"),
                         ("validatingwebhookconfigurations", "fsm-validator-uninstall-test")):  # fmt: skip
        assert not _exists(kube, path_for("admissionregistration.k8s.io/v1", plural, name=name))


def test_service_cert_is_handed_over_and_renewed_before_expiry(webhook, kube):
    """The proxy's bootstrap Secret carries its ServiceAccount's identity cert; with a short
    serviceCertValidityDuration the server writes a renewed one into the Secret before expiry."""
    from cryptography import x509

    from webhook.certs.leaf import chains_to

    mc_path = path_for("config.flomesh.io/v1alpha3", "meshconfigs", MESH_NS)
    body = {"apiVersion": "config.flomesh.io/v1alpha3", "kind": "MeshConfig", "metadata": {"name": "fsm-mesh-config"},
            "spec": {"certificate": {"serviceCertValidityDuration": "9s"}}}  # fmt: skip
    with contextlib.suppress(KubeError):
        kube.delete(f"{mc_path}/fsm-mesh-config")
    kube.create(mc_path, body)
    try:
        ns = make_ns(kube)

        def cert_of(secret):
            return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["service_cert.pem"]))

        def short_lived_pod():
            stored = kube.create(path_for("v1", "pods", ns), pod(f"svc-{uuid.uuid4().hex[:6]}"))
            uid = stored["metadata"]["labels"]["fsm-proxy-uuid"]
            secret = kube.get(path_for("v1", "secrets", ns, f"sidecar-bootstrap-config-{uid}"))
            cert = cert_of(secret)
            life = cert.not_valid_after_utc - cert.not_valid_before_utc
            return (
                secret if life.total_seconds() <= 15 else None
            )  # 9 s, less jitter, plus a tenth of skew allowance

        secret = until(short_lived_pod, 15, 0.5, what="a pod admitted under the 9s validity")
        first = cert_of(secret)
        cn = first.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert cn == f"default.{ns}.cluster.local"
        ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["cacert.pem"]))
        assert chains_to(first, ca)
        path = path_for("v1", "secrets", ns, secret["metadata"]["name"])
        renewed = until(lambda: cert_of(s := kube.get(path)) != first and s, 12, 0.5,
                        what="the service cert to be renewed in the Secret")  # fmt: skip
        second = cert_of(renewed)
        assert second.not_valid_after_utc > first.not_valid_after_utc
        assert first.not_valid_after_utc > second.not_valid_before_utc, "renewed before the old one expired"
        assert chains_to(second, ca)
    finally:
        kube.delete(f"{mc_path}/fsm-mesh-config")


def test_webhook_configurations_are_garbage_collected_with_their_owner(cluster, kube, tmp_path):
    """With --owner-cluster-role (the chart passes its ClusterRole), deleting that ClusterRole — as
    `helm uninstall` does — makes Kubernetes delete the configurations the server registered."""
    role = f"fsm-onboard-gc-{uuid.uuid4().hex[:6]}"
    kube.create(
        path_for("rbac.authorization.k8s.io/v1", "clusterroles"), {"metadata": {"name": role}, "rules": []}
    )
    paths = [path_for("admissionregistration.k8s.io/v1", plural, name=f"{prefix}-gc")
             for plural, prefix in (("mutatingwebhookconfigurations", "fsm-webhook"),
                                    ("validatingwebhookconfigurations", "fsm-validator"))]  # fmt: skip
    with serve_cluster(cluster.kubeconfig, tmp_path, "--mesh-name", "gc", "--owner-cluster-role", role):
        until(lambda: all(_exists(kube, p) for p in paths), 20, what="both configurations")
        for p in paths:
            owners = kube.get(p)["metadata"]["ownerReferences"]
            assert [(o["kind"], o["name"]) for o in owners] == [("ClusterRole", role)]
    kube.delete(path_for("rbac.authorization.k8s.io/v1", "clusterroles", name=role))
    until(
        lambda: not any(_exists(kube, p) for p in paths), 60, 0.5, what="the garbage collector to delete them"
    )


def test_unknown_owner_cluster_role_is_a_clear_error(cluster, tmp_path):
    r = subprocess.run(
        [str(BIN / "fsm-onboard"), "serve", "--kubeconfig", str(cluster.kubeconfig), "--port", "1",
         "--webhook-url", "https://127.0.0.1:1", "--cert-dir", str(tmp_path), "--owner-cluster-role", "no-such-role"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        r.returncode == 1 and "--owner-cluster-role no-such-role" in r.stderr and "Traceback" not in r.stderr
    )


def test_bring_your_own_ca_from_files(cluster, kube, tmp_path):
    from cryptography import x509

    from webhook.certs.ca import CA
    from webhook.certs.leaf import chains_to

    ca = CA.generate()
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "ca.key").write_bytes(ca.key_pem)
    mesh = f"byo-{uuid.uuid4().hex[:6]}"
    args = ("--mesh-name", mesh, "--mesh-namespace", mesh, "--ca-cert", str(tmp_path / "ca.crt"),
            "--ca-key", str(tmp_path / "ca.key"))  # fmt: skip
    workdir = tmp_path / "server"
    workdir.mkdir()
    with serve_cluster(cluster.kubeconfig, workdir, *args):
        stored = kube.get(path_for("v1", "secrets", mesh, "fsm-ca-bundle"))
        assert base64.b64decode(stored["data"]["ca.crt"]) == ca.cert_pem
        served = x509.load_pem_x509_certificate((workdir / "certs" / "tls.crt").read_bytes())
        assert chains_to(served, ca.cert)
    # Another CA for the same mesh is refused with the reason, not silently swapped in.
    other = CA.generate()
    (tmp_path / "other.crt").write_bytes(other.cert_pem)
    (tmp_path / "other.key").write_bytes(other.key_pem)
    r = subprocess.run(
        [str(BIN / "fsm-onboard"), "serve", "--kubeconfig", str(cluster.kubeconfig), "--port", "1",
         "--webhook-url", "https://127.0.0.1:1", "--cert-dir", str(tmp_path / "c2"), "--mesh-name", mesh,
         "--mesh-namespace", mesh, "--ca-cert", str(tmp_path / "other.crt"), "--ca-key", str(tmp_path / "other.key")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "holds a different CA" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [str(BIN / "fsm-onboard"), "serve", "--kubeconfig", str(cluster.kubeconfig), "--ca-cert", str(tmp_path / "ca.crt")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "--ca-cert and --ca-key: give both or neither" in r.stderr
    for plural, prefix in (
        ("mutatingwebhookconfigurations", "fsm-webhook"),
        ("validatingwebhookconfigurations", "fsm-validator"),
    ):
        with contextlib.suppress(KubeError):
            kube.delete(path_for("admissionregistration.k8s.io/v1", plural, name=f"{prefix}-{mesh}"))
