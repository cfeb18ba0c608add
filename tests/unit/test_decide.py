"""FSM's injection decision, rule by rule (REFERENCE §1), in FSM's order of precedence."""

from __future__ import annotations

import pytest

from webhook.inject.decide import Reason, decide

MESH = "fsm"


def ns(name="demo", labels=None, annotations=None):
    return {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}}


def pod(annotations=None, host_network=None, labels=None, containers=None):
    spec = {"containers": containers or [{"name": "app", "image": "app"}]}
    if host_network is not None:
        spec["hostNetwork"] = host_network
    return {"metadata": {"name": "p", "annotations": annotations or {}, "labels": labels or {}}, "spec": spec}


MONITORED = {"flomesh.io/monitored-by": MESH}
ON = {"flomesh.io/sidecar-injection": "enabled"}
OFF = {"flomesh.io/sidecar-injection": "disabled"}

CASES = [
    (
        "hostNetwork wins over everything",
        pod(ON, host_network=True),
        ns(labels=MONITORED, annotations=ON),
        False,
        Reason.HOST_NETWORK,
    ),
    ("kube-system", pod(ON), ns("kube-system", MONITORED, ON), False, Reason.SYSTEM_NAMESPACE),
    ("kube-public", pod(ON), ns("kube-public", MONITORED, ON), False, Reason.SYSTEM_NAMESPACE),
    ("mesh namespace", pod(ON), ns("fsm-system", MONITORED, ON), False, Reason.MESH_NAMESPACE),
    (
        "ignored namespace",
        pod(ON),
        ns(labels={**MONITORED, "flomesh.io/ignore": "true"}, annotations=ON),
        False,
        Reason.NAMESPACE_IGNORED,
    ),
    ("unlabelled namespace", pod(ON), ns(annotations=ON), False, Reason.NAMESPACE_NOT_MONITORED),
    (
        "another mesh's namespace",
        pod(ON),
        ns(labels={"flomesh.io/monitored-by": "other"}, annotations=ON),
        False,
        Reason.NAMESPACE_NOT_MONITORED,
    ),
    ("pod enabled, namespace silent", pod(ON), ns(labels=MONITORED), True, Reason.POD_ENABLED),
    (
        "pod enabled beats namespace disabled",
        pod(ON),
        ns(labels=MONITORED, annotations=OFF),
        True,
        Reason.POD_ENABLED,
    ),
    (
        "pod disabled beats namespace enabled",
        pod(OFF),
        ns(labels=MONITORED, annotations=ON),
        False,
        Reason.POD_DISABLED,
    ),
    (
        "namespace enabled, pod silent",
        pod(),
        ns(labels=MONITORED, annotations=ON),
        True,
        Reason.NAMESPACE_ENABLED,
    ),
    (
        "namespace disabled, pod silent",
        pod(),
        ns(labels=MONITORED, annotations=OFF),
        False,
        Reason.NAMESPACE_DISABLED,
    ),
    ("both silent", pod(), ns(labels=MONITORED), False, Reason.NOT_ENABLED),
    (
        "values are case-insensitive: YES",
        pod({"flomesh.io/sidecar-injection": "YES"}),
        ns(labels=MONITORED),
        True,
        Reason.POD_ENABLED,
    ),
    (
        "values: True",
        pod({"flomesh.io/sidecar-injection": "True"}),
        ns(labels=MONITORED),
        True,
        Reason.POD_ENABLED,
    ),
    (
        "values: No",
        pod({"flomesh.io/sidecar-injection": "No"}),
        ns(labels=MONITORED, annotations=ON),
        False,
        Reason.POD_DISABLED,
    ),
    (
        "already injected by us",
        pod({**ON, "flomesh.io/sidecar-status": "{}"}),
        ns(labels=MONITORED),
        False,
        Reason.ALREADY_INJECTED,
    ),
    (
        "already injected by FSM (uuid label + sidecar container)",
        pod(ON, labels={"fsm-proxy-uuid": "x"}, containers=[{"name": "app"}, {"name": "sidecar"}]),
        ns(labels=MONITORED),
        False,
        Reason.ALREADY_INJECTED,
    ),
]


@pytest.mark.parametrize(
    ("pod_obj", "ns_obj", "inject", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decision(pod_obj, ns_obj, inject, reason):
    d = decide(pod_obj, ns_obj, mesh_name=MESH, mesh_namespace="fsm-system")
    assert (d.inject, d.reason) == (inject, reason)
    assert not d.denied


@pytest.mark.parametrize(
    ("pod_ann", "ns_ann", "where"),
    [
        ({"flomesh.io/sidecar-injection": "maybe"}, {}, "pod"),
        ({}, {"flomesh.io/sidecar-injection": "sure"}, "namespace"),
    ],
)
def test_invalid_value_is_denied_with_a_message(pod_ann, ns_ann, where):
    d = decide(
        pod(pod_ann), ns(labels=MONITORED, annotations=ns_ann), mesh_name=MESH, mesh_namespace="fsm-system"
    )
    assert d.denied and not d.inject and d.reason == Reason.INVALID_ANNOTATION
    assert (
        where in d.message and "flomesh.io/sidecar-injection" in d.message and "enabled|yes|true" in d.message
    )


def test_every_reason_has_a_sentence():
    for reason in Reason:
        assert reason.sentence
