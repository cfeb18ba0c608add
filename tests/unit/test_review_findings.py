"""Inputs that once broke the engine: each now gives a 400, a denial or a warning, never a crash."""

from __future__ import annotations

import threading

import jsonpatch
import orjson
import pytest

from webhook.admission import ReviewError, parse_review
from webhook.inject import Context, Reason, inject, load_templates
from webhook.inject.probes import rewrite_probes
from webhook.kube.client import KubeError
from webhook.kube.informer import Informer
from webhook.meshconfig import parse_mesh_config

TEMPLATES = load_templates()
NS = {"metadata": {"name": "demo", "labels": {"flomesh.io/monitored-by": "fsm"},
                   "annotations": {"flomesh.io/sidecar-injection": "enabled"}}}  # fmt: skip


def run(pod):
    return inject(pod, NS, parse_mesh_config(None), TEMPLATES, Context())


def body(obj, **request):
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                         "request": {"uid": "u", "kind": {"kind": "Pod"}, "object": obj, **request}})  # fmt: skip


@pytest.mark.parametrize(
    ("obj", "request_extra", "field"),
    [
        ({"metadata": {"ownerReferences": ["x"]}}, {}, "request.object.metadata.ownerReferences"),
        ({"metadata": {"ownerReferences": "abc"}}, {}, "request.object.metadata.ownerReferences"),
        ({"spec": {"containers": [{"name": []}]}}, {}, "request.object.spec.containers"),
        ({"spec": {}}, {"namespace": ["a"]}, "request.namespace"),
    ],
)
def test_malformed_pods_are_400(obj, request_extra, field):
    with pytest.raises(ReviewError) as err:
        parse_review(body(obj, **request_extra))
    assert err.value.field == field


def test_null_labels_and_annotations_are_injected():
    pod = {
        "metadata": {"name": "p", "labels": None, "annotations": None},
        "spec": {"containers": [{"name": "a"}]},
    }
    out = run(pod)
    assert out.rendered is not None
    assert jsonpatch.apply_patch(pod, out.patch) == out.rendered.pod
    assert "fsm-proxy-uuid" in out.rendered.pod["metadata"]["labels"]


@pytest.mark.parametrize("port", [0, -1, 70000, "²", "٨٠", None, True])
def test_invalid_probe_ports_are_left_for_the_api_server(port):
    containers = [{"name": "a", "livenessProbe": {"httpGet": {"port": port}}}]
    out = rewrite_probes(containers)
    assert out.containers == containers and out.warnings


@pytest.mark.parametrize("probe", [{"httpGet": "x"}, {"grpc": "x"}, {"tcpSocket": None}])
def test_non_object_probe_handlers_are_left_alone(probe):
    containers = [{"name": "a", "ports": [1, "http"], "readinessProbe": probe}]
    out = rewrite_probes(containers)
    assert out.containers == containers and out.warnings


@pytest.mark.parametrize(
    ("spec", "annotations", "says"),
    [
        ({"containers": [{"name": "sidecar"}]}, {}, "already has a container named 'sidecar'"),
        ({"containers": [{"name": "a"}], "initContainers": [{"name": "fsm-init"}]}, {}, "named 'fsm-init'"),
        ({"containers": [{"name": "a"}], "volumes": [{"name": "sidecar-bootstrap-config-volume"}]}, {},
         "volume named 'sidecar-bootstrap-config-volume'"),
        ({"containers": [{"name": "a", "volumeMounts": [{"name": "fsm-bpffs", "mountPath": "/x"}]}]},
         {"flomesh.io/interception-mode": "ebpf"}, "container 'a' mounts 'fsm-bpffs'"),
    ],
)  # fmt: skip
def test_name_conflicts_are_denied(spec, annotations, says):
    out = run({"metadata": {"name": "p", "annotations": annotations}, "spec": spec})
    assert out.denied and out.decision.reason == Reason.NAME_CONFLICT and says in out.decision.message


class FlakyKube:
    """A stand-in API client whose first list fails with a non-Kubernetes error."""

    def __init__(self):
        self.calls = 0

    def get(self, path, **kw):
        self.calls += 1
        if self.calls == 1:
            raise ValueError("IncompleteRead(22 bytes read, 978 more expected)")
        return {"metadata": {"resourceVersion": "1"}, "items": [{"metadata": {"name": "x"}}]}

    def watch(self, path, **kw):
        stop = threading.Event()

        class Stream:
            def __iter__(self):
                stop.wait(0.2)
                return iter(())

            def close(self):
                stop.set()

        return Stream()


def test_informer_survives_errors_that_are_not_kubernetes_errors():
    inf = Informer(FlakyKube(), "/api/v1/things", name="flaky").start()  # type: ignore[arg-type]
    try:
        assert inf.wait_synced(5), "the informer thread died on a ValueError"
        assert inf.get("x") is not None and inf.errors == 1
    finally:
        inf.stop()


def test_kube_error_wraps_status():
    err = KubeError(410, "too old", "Expired")
    assert err.gone and not err.not_found and str(err) == "too old"
