"""Namespaces of the mesh: their onboarding annotations, checked before they can break admissions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook import constants as c
from webhook.inject.settings import AnnotationError, resolve_settings
from webhook.meshconfig import MeshConfig
from webhook.values import parse_switch

__all__ = ["validate_namespace"]


def validate_namespace(obj: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a Namespace's flomesh.io annotations and labels."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    errors, warnings = [], []
    raw = annotations.get(c.ANN_SIDECAR_INJECTION)
    if raw is not None:
        try:
            parse_switch(raw)
        except ValueError as exc:
            errors.append(f"annotation {c.ANN_SIDECAR_INJECTION}: {exc}")
    try:
        # The namespace-level annotations the injector reads (image, resources, switches, mode).
        resolve_settings({}, obj, MeshConfig())
    except AnnotationError as exc:
        errors.extend(f"annotation {ann}: {reason}" for _where, ann, reason in exc.errors)
    if str(labels.get(c.LABEL_IGNORE, "")).lower() == "true" and c.LABEL_MONITORED_BY in labels:
        warnings.append(f"{c.LABEL_IGNORE}=true wins: pods in this namespace are never onboarded")
    return errors, warnings
