"""The AdmissionReview envelope: every malformed shape is a ReviewError naming the field."""

from __future__ import annotations

import base64

import orjson
import pytest

from webhook.admission import ReviewError, allow, deny, parse_review


def body(**overrides):
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"kind": "Pod"},
            "object": {"metadata": {}, "spec": {"containers": []}},
        },
    }
    for key, value in overrides.items():
        if key.startswith("request_"):
            review["request"][key[8:]] = value
        else:
            review[key] = value
    return orjson.dumps(review)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "(body)"),
        (b"[]", "(body)"),
        (b'"x"', "(body)"),
        (body(apiVersion="admission.k8s.io/v1beta1"), "apiVersion"),
        (body(kind="Pod"), "kind"),
        (body(request=None), "request"),
        (body(request_uid=""), "request.uid"),
        (body(request_uid=5), "request.uid"),
        (body(request_object=None), "request.object"),
        (body(request_object=[1]), "request.object"),
        (body(request_kind={"kind": "Service"}), "request.kind"),
        (body(request_dryRun="yes"), "request.dryRun"),
        (body(request_object={"spec": []}), "request.object.spec"),
        (body(request_object={"spec": {"containers": {}}}), "request.object.spec.containers"),
        (body(request_object={"spec": {"containers": ["x"]}}), "request.object.spec.containers"),
        (body(request_object={"metadata": {"annotations": {"a": 1}}}), "request.object.metadata.annotations"),
        (body(request_object={"metadata": {"labels": []}}), "request.object.metadata.labels"),
    ],
)
def test_malformed_reviews_name_the_field(raw, field):
    with pytest.raises(ReviewError) as err:
        parse_review(raw)
    assert err.value.field == field
    assert orjson.loads(err.value.body())["field"] == field


def test_kind_taken_from_object_when_request_kind_missing():
    raw = orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "object": {"kind": "Pod"}},
        }
    )
    assert parse_review(raw)["uid"] == "u"


def test_allow_and_deny_shapes():
    ok = orjson.loads(allow("u", [{"op": "add", "path": "/x", "value": 1}], ["w"]))
    assert ok["response"]["uid"] == "u" and ok["response"]["allowed"] is True
    assert ok["response"]["patchType"] == "JSONPatch" and ok["response"]["warnings"] == ["w"]
    assert orjson.loads(base64.b64decode(ok["response"]["patch"])) == [
        {"op": "add", "path": "/x", "value": 1}
    ]
    assert "patch" not in orjson.loads(allow("u"))["response"]
    no = orjson.loads(deny("u", "why"))["response"]
    assert no == {
        "uid": "u",
        "allowed": False,
        "status": {"code": 403, "message": "why", "reason": "Forbidden"},
    }
