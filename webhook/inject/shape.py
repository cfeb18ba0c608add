"""The shape a raw pod must have before the engine touches it (what the API server guarantees for a
real pod; an AdmissionReview from elsewhere or a hand-written manifest may not have it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["pod_shape_problem"]


def pod_shape_problem(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(field, reason)`` for the first thing the engine could not work on, else None.

    Fields are relative to the pod object (``spec.containers``)."""
    for field in ("metadata", "spec"):
        if obj.get(field) is not None and not isinstance(obj[field], dict):
            return field, "expected an object"
    spec = obj.get("spec") or {}
    for field in ("containers", "initContainers", "volumes"):
        value = spec.get(field)
        if value is not None and not isinstance(value, list):
            return f"spec.{field}", "expected a list"
        if any(not isinstance(item, dict) for item in value or []):
            return f"spec.{field}", "expected a list of objects"
        if field != "volumes" and any(not isinstance(item.get("name", ""), str) for item in value or []):
            return f"spec.{field}", "expected every name to be a string"
    meta = obj.get("metadata") or {}
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            return f"metadata.{field}", "expected a map of strings"
    refs = meta.get("ownerReferences")
    if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs)):
        return "metadata.ownerReferences", "expected a list of objects"
    return None
