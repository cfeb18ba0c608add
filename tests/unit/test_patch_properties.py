"""Properties of the patch: applying it to the original gives the rendered pod; injecting twice changes nothing."""

from __future__ import annotations

import json

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.inject import Context, inject, load_templates
from webhook.inject.patch import make_patch
from webhook.meshconfig import parse_mesh_config

TEMPLATES = load_templates()
NS = {
    "metadata": {
        "name": "demo",
        "labels": {"flomesh.io/monitored-by": "fsm"},
        "annotations": {"flomesh.io/sidecar-injection": "enabled"},
    }
}

keys = st.text(alphabet="abc/~-._", min_size=1, max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


@given(json_values, json_values)
@settings(max_examples=300)
def test_diff_of_any_two_documents_applies(a, b):
    doc_a, doc_b = {"root": a}, {"root": b}
    assert jsonpatch.apply_patch(doc_a, make_patch(doc_a, doc_b)) == doc_b


port = st.integers(1, 65535)
probe = st.one_of(
    st.builds(
        lambda p, path: {"httpGet": {"port": p, "path": path}},
        port,
        st.sampled_from(["/", "/healthz", "/a b"]),
    ),
    st.builds(lambda p: {"httpGet": {"port": p, "scheme": "HTTPS"}}, port),
    st.builds(lambda p: {"tcpSocket": {"port": p}}, port),
    st.builds(lambda p: {"grpc": {"port": p}}, port),
    st.just({"exec": {"command": ["true"]}}),
)
container = st.fixed_dictionaries(
    {"name": st.from_regex(r"[a-z]{1,8}", fullmatch=True), "image": st.just("img")},
    optional={
        "livenessProbe": probe,
        "readinessProbe": probe,
        "startupProbe": probe,
        "ports": st.lists(st.builds(lambda p: {"containerPort": p}, port), max_size=2),
    },
)
annotations = st.fixed_dictionaries(
    {},
    optional={
        "flomesh.io/native-sidecar": st.sampled_from(["true", "false"]),
        "flomesh.io/hold-application-until-proxy-starts": st.sampled_from(["true", "false"]),
        "flomesh.io/graceful-exit-until-downstream-ends": st.sampled_from(["yes", "no"]),
        "flomesh.io/interception-mode": st.sampled_from(["iptables", "nftables", "ebpf"]),
        "flomesh.io/outbound-port-exclusion-list": st.sampled_from(["80", "80,443", "6379, 3306"]),
        "other.io/x": st.text(max_size=10),
    },
)
pods = st.builds(
    lambda cs, inits, ann, vols, labels: {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": ann, **({"labels": labels} if labels else {})},
        "spec": {
            "containers": cs,
            **({"initContainers": inits} if inits else {}),
            **({"volumes": vols} if vols else {}),
        },
    },
    st.lists(container, min_size=1, max_size=3),
    st.lists(container, max_size=2),
    annotations,
    st.lists(
        st.builds(lambda n: {"name": n, "emptyDir": {}}, st.from_regex(r"v[a-z]{1,5}", fullmatch=True)),
        max_size=2,
    ),
    st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.text(max_size=5), max_size=2),
)


@given(pods)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_patch_applied_to_original_gives_rendered_pod_and_reinjection_is_stable(pod):
    # As the pod arrives on the wire: hypothesis' st.just() shares one dict between fields, and
    # deepcopy (inside jsonpatch) keeps that aliasing, which no JSON document can have.
    pod = json.loads(json.dumps(pod))
    config = parse_mesh_config(None)
    first = inject(pod, NS, config, TEMPLATES, Context())
    assert first.rendered is not None
    assert jsonpatch.apply_patch(pod, first.patch) == first.rendered.pod
    again = inject(first.rendered.pod, NS, config, TEMPLATES, Context())
    assert again.rendered is None and again.patch == []
    # The app's own containers, init containers and volumes are all still there.
    spec = first.rendered.pod["spec"]
    names = [c["name"] for c in spec["containers"] + spec["initContainers"]]
    for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        assert c["name"] in names
