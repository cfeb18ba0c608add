"""Pure parts of the cluster shell: webhook configuration, namespace patches, Events."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from webhook.inject import Decision, Outcome, Reason
from webhook.kube.events import event_for
from webhook.kube.namespaces import NamespaceError, add_patch, list_rows, remove_patch
from webhook.kube.webhookconfig import WebhookSettings, _drifted, desired_config


def test_desired_config_matches_fsm_and_adds_reinvocation():
    cfg = desired_config(WebhookSettings("fsm", "fsm-system"), b"CA")
    assert cfg["metadata"]["name"] == "fsm-webhook-fsm"
    hook = cfg["webhooks"][0]
    assert hook["name"] == "fsm-inject.k8s.io"
    assert hook["clientConfig"]["service"] == {
        "name": "fsm-onboard-webhook",
        "namespace": "fsm-system",
        "path": "/mutate-pod-creation",
        "port": 443,
    }
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == b"CA"
    assert (hook["failurePolicy"], hook["sideEffects"], hook["timeoutSeconds"]) == (
        "Fail",
        "NoneOnDryRun",
        10,
    )
    assert hook["reinvocationPolicy"] == "IfNeeded" and hook["admissionReviewVersions"] == ["v1"]
    assert hook["rules"][0]["operations"] == ["CREATE"] and hook["rules"][0]["resources"] == ["pods"]
    sel = hook["namespaceSelector"]
    assert sel["matchLabels"] == {"flomesh.io/monitored-by": "fsm"}
    assert {"key": "flomesh.io/ignore", "operator": "DoesNotExist"} in sel["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["fsm-system"]} in sel[
        "matchExpressions"
    ]
    assert {"key": "control-plane", "operator": "DoesNotExist"} in sel["matchExpressions"]
    url = desired_config(WebhookSettings("m", "ns", url="https://127.0.0.1:9443/"), b"x")["webhooks"][0][
        "clientConfig"
    ]
    assert url["url"] == "https://127.0.0.1:9443/mutate-pod-creation" and "service" not in url


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_policy": "Maybe"}, "--failure-policy"),
        ({"timeout_seconds": 31}, "--webhook-timeout"),
        ({"url": "http://x"}, "--webhook-url"),
    ],
)
def test_webhook_settings_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WebhookSettings("fsm", "fsm-system", **kwargs)


def test_drift_ignores_server_defaults_but_sees_our_fields():
    want = desired_config(WebhookSettings("fsm", "fsm-system"), b"CA")
    stored = {
        "webhooks": [
            {
                **want["webhooks"][0],
                "timeoutSeconds": 10,
                "rules": [{**want["webhooks"][0]["rules"][0]}],
                "extra": "server default",
            }
        ]
    }
    assert not _drifted(stored, want)
    stored["webhooks"][0]["failurePolicy"] = "Ignore"
    assert _drifted(stored, want)
    assert _drifted({"webhooks": []}, want)


def ns(labels=None, annotations=None):
    return {"metadata": {"name": "shop", "labels": labels or {}, "annotations": annotations or {}}}


def test_namespace_add_and_remove_patches():
    assert add_patch(ns(), "fsm") == {
        "metadata": {
            "labels": {"flomesh.io/monitored-by": "fsm"},
            "annotations": {"flomesh.io/sidecar-injection": "enabled"},
        }
    }
    patch = add_patch(ns(), "fsm", injection=False, metrics=True)
    assert patch["metadata"]["annotations"] == {
        "flomesh.io/sidecar-injection": "disabled",
        "flomesh.io/metrics": "enabled",
    }
    onboarded = ns({"flomesh.io/monitored-by": "fsm"}, {"flomesh.io/sidecar-injection": "enabled", "x": "y"})
    assert remove_patch(onboarded, "fsm") == {
        "metadata": {
            "labels": {"flomesh.io/monitored-by": None},
            "annotations": {"flomesh.io/sidecar-injection": None},
        }
    }


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"flomesh.io/ignore": "true"}, "flomesh.io/ignore=true"),
        ({"flomesh.io/monitored-by": "other"}, "mesh 'other'"),
    ],
)
def test_namespace_add_refusals(labels, message):
    with pytest.raises(NamespaceError, match=message):
        add_patch(ns(labels), "fsm")


def test_namespace_remove_refuses_foreign_or_plain():
    with pytest.raises(NamespaceError, match="not part of any mesh"):
        remove_patch(ns(), "fsm")
    with pytest.raises(NamespaceError, match="monitored by mesh 'b'"):
        remove_patch(ns({"flomesh.io/monitored-by": "b"}), "fsm")


def test_namespace_list_rows():
    rows = list_rows(
        [
            ns({"flomesh.io/monitored-by": "fsm"}, {"flomesh.io/sidecar-injection": "enabled"}),
            {"metadata": {"name": "other", "labels": {"flomesh.io/monitored-by": "b"}}},
            {"metadata": {"name": "plain"}},
        ],
        "fsm",
    )
    assert rows == [("shop", "fsm", "enabled", "-")]


NOW = datetime(2026, 1, 1, tzinfo=UTC)
POD = {
    "metadata": {
        "generateName": "web-abc-",
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-abc",
                "uid": "u1",
                "controller": True,
            }
        ],
    }
}


def test_events_go_on_the_owner_for_denials_failures_and_unusual_skips():
    denied = Outcome(Decision(False, Reason.INVALID_ANNOTATION, error="pod annotation x: bad"))
    ev = event_for(POD, "shop", denied, None, NOW)
    assert (
        ev["reason"] == "InjectionDenied"
        and ev["type"] == "Warning"
        and ev["message"] == "pod annotation x: bad"
    )
    assert ev["involvedObject"] == {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-abc",
        "uid": "u1",
        "namespace": "shop",
    }
    failed = event_for(POD, "shop", None, "Secret create timed out", NOW)
    assert failed["reason"] == "InjectionFailed"
    skipped = event_for(
        {"metadata": {"name": "p"}}, "shop", Outcome(Decision(False, Reason.HOST_NETWORK)), None, NOW
    )
    assert skipped["reason"] == "InjectionSkipped" and skipped["involvedObject"]["kind"] == "Pod"
    assert event_for(POD, "shop", Outcome(Decision(False, Reason.POD_DISABLED)), None, NOW) is None


def test_owner_reference_is_set_and_watched_for_drift():
    owner = (
        ("apiVersion", "rbac.authorization.k8s.io/v1"),
        ("kind", "ClusterRole"),
        ("name", "r"),
        ("uid", "u1"),
    )
    s = WebhookSettings("fsm", "fsm-system", owner=owner)
    want = desired_config(s, b"CA")
    assert want["metadata"]["ownerReferences"] == [dict(owner)]
    stored = {
        "metadata": {"ownerReferences": [{**dict(owner), "controller": None}]},
        "webhooks": want["webhooks"],
    }
    assert not _drifted(stored, want)
    stored["metadata"]["ownerReferences"] = []
    assert _drifted(stored, want)
    assert "ownerReferences" not in desired_config(WebhookSettings("fsm", "fsm-system"), b"CA")["metadata"]
