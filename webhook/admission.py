"""AdmissionReview v1 in and out: the envelope, its errors, and the response builders.

Two error families, as in Kopf: a malformed review is the caller's bug (``ReviewError`` → HTTP 400
with a JSON body naming the problem); a well-formed review of a pod we refuse is an admission
denial (``allowed: false`` with a message), which kubectl shows to the user.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, TypedDict

import orjson

from webhook.inject.shape import pod_shape_problem

__all__ = [
    "AdmissionRequest",
    "ReviewError",
    "allow",
    "deny",
    "parse_review",
]

API_VERSION = "admission.k8s.io/v1"


class AdmissionRequest(TypedDict, total=False):
    uid: str
    kind: dict[str, str]
    resource: dict[str, str]
    namespace: str
    name: str
    operation: str
    dryRun: bool
    object: dict[str, Any]
    oldObject: dict[str, Any] | None
    userInfo: dict[str, Any]


class ReviewError(ValueError):
    """The request body is not an AdmissionReview we can answer (→ HTTP 400)."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def body(self) -> bytes:
        return orjson.dumps({"error": "bad AdmissionReview", "field": self.field, "reason": self.reason})


def parse_review(body: bytes, *, kinds: tuple[str, ...] = ("Pod",)) -> AdmissionRequest:
    """Check the envelope and return its ``request``; raise ReviewError naming the bad field."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError("(body)", f"not valid JSON: {exc}") from None
    if not isinstance(review, dict):
        raise ReviewError("(body)", "expected a JSON object (an AdmissionReview)")
    if review.get("apiVersion") != API_VERSION:
        raise ReviewError("apiVersion", f"expected {API_VERSION!r}, got {review.get('apiVersion')!r}")
    if review.get("kind") != "AdmissionReview":
        raise ReviewError("kind", f"expected 'AdmissionReview', got {review.get('kind')!r}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request", "missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid", "missing or not a string")
    kind = request.get("kind")
    kind_name = kind.get("kind") if isinstance(kind, dict) else None
    obj = request.get("object")
    if not isinstance(obj, dict):
        raise ReviewError("request.object", "missing or not an object")
    if kind_name is None:
        kind_name = obj.get("kind")
    if kind_name not in kinds:
        raise ReviewError("request.kind", f"expected one of {', '.join(kinds)}, got {kind_name!r}")
    if "dryRun" in request and not isinstance(request["dryRun"], bool):
        raise ReviewError("request.dryRun", "expected a boolean")
    if "namespace" in request and not isinstance(request["namespace"], str):
        raise ReviewError("request.namespace", "expected a string")
    if kind_name == "Pod":
        problem = pod_shape_problem(obj)
        if problem is not None:
            raise ReviewError(f"request.object.{problem[0]}", problem[1])
    return request  # type: ignore[return-value]


def _review(response: Mapping[str, Any]) -> bytes:
    return orjson.dumps({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response})


def allow(uid: str, patch: list[dict[str, Any]] | None = None, warnings: list[str] | None = None) -> bytes:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(patch)).decode()
    if warnings:
        response["warnings"] = warnings
    return _review(response)


def deny(uid: str, message: str, *, code: int = 403, reason: str = "Forbidden") -> bytes:
    return _review(
        {"uid": uid, "allowed": False, "status": {"code": code, "message": message, "reason": reason}}
    )
