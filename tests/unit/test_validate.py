"""The validating webhook's checks (pure) and its configuration."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from webhook.kube.webhookconfig import WebhookSettings, desired_validating_config
from webhook.metrics import Metrics
from webhook.validate import Validator
from webhook.validate.meshconfig import validate_meshconfig
from webhook.validate.namespace import validate_namespace


def mc(spec, name="fsm-mesh-config"):
    return {
        "apiVersion": "config.flomesh.io/v1alpha3",
        "kind": "MeshConfig",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_meshconfig_errors_name_every_field():
    errors, _ = validate_meshconfig(mc({"traffic": {"enableEgress": "no"}, "sidecar": {"logLevl": "x"}}))
    assert 'spec.traffic.enableEgress: expected boolean, got "no"' in errors
    assert "spec.sidecar.logLevl: unknown field" in errors
    assert validate_meshconfig(mc({"sidecar": {"logLevel": "debug"}})) == ([], [])
    _, warnings = validate_meshconfig(mc({}, name="other"))
    assert warnings and "fsm-mesh-config" in warnings[0]


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {"flomesh.io/sidecar-injection": "maybe"},
            "annotation flomesh.io/sidecar-injection: expected one of",
        ),
        ({"flomesh.io/metrics": "on"}, "annotation flomesh.io/metrics"),
        (
            {"flomesh.io/sidecar-resource-limits-cpu": "lots"},
            "annotation flomesh.io/sidecar-resource-limits-cpu",
        ),
        ({"flomesh.io/interception-mode": "ipvs"}, "annotation flomesh.io/interception-mode"),
        ({"flomesh.io/sidecar-image": "a b"}, "annotation flomesh.io/sidecar-image"),
    ],
)
def test_namespace_annotation_errors(annotations, message):
    errors, _ = validate_namespace({"metadata": {"name": "n", "annotations": annotations}})
    assert any(message in e for e in errors), errors


def test_good_namespace_passes_and_ignore_warns():
    ok = {
        "metadata": {
            "name": "n",
            "labels": {"flomesh.io/monitored-by": "fsm"},
            "annotations": {"flomesh.io/sidecar-injection": "enabled", "flomesh.io/metrics": "enabled"},
        }
    }
    assert validate_namespace(ok) == ([], [])
    ok["metadata"]["labels"]["flomesh.io/ignore"] = "true"
    assert validate_namespace(ok)[1]


def review(obj, kind):
    return orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "kind": {"kind": kind}, "object": obj},
        }
    )


def test_validator_answers():
    v = Validator(Metrics.create())
    status, body = asyncio.run(v.review(review(mc({"traffic": {"enableEgress": 1}}), "MeshConfig")))
    resp = orjson.loads(body)["response"]
    assert status == 200 and resp["allowed"] is False and resp["status"]["code"] == 422
    assert "spec.traffic.enableEgress: expected boolean, got 1" in resp["status"]["message"]
    status, body = asyncio.run(v.review(review({"metadata": {"name": "n"}}, "Namespace")))
    assert orjson.loads(body)["response"]["allowed"] is True
    status, body = asyncio.run(v.review(review({"metadata": {}}, "Pod")))
    assert status == 400 and orjson.loads(body)["field"] == "request.kind"


def test_validating_configuration_is_scoped_to_the_mesh():
    cfg = desired_validating_config(WebhookSettings("fsm", "fsm-system"), b"CA")
    assert cfg["metadata"]["name"] == "fsm-validator-fsm"
    mesh, ns = cfg["webhooks"]
    assert (
        mesh["rules"][0]["resources"] == ["meshconfigs"]
        and mesh["clientConfig"]["service"]["path"] == "/validate"
    )
    assert mesh["namespaceSelector"]["matchExpressions"][0]["values"] == ["fsm-system"]
    assert ns["rules"][0]["resources"] == ["namespaces"]
    assert ns["objectSelector"] == {"matchLabels": {"flomesh.io/monitored-by": "fsm"}}
    assert {h["sideEffects"] for h in cfg["webhooks"]} == {"None"}
