"""``fsm-onboard namespace add|remove|list``: onboard namespaces the way ``fsm namespace`` does.

``add`` labels ``flomesh.io/monitored-by=<mesh>`` and annotates ``flomesh.io/sidecar-injection``
(``enabled``, or ``disabled`` with --disable-sidecar-injection) and, with --enable-metrics,
``flomesh.io/metrics: enabled``. A namespace labelled ``flomesh.io/ignore=true`` or already
monitored by another mesh is refused with a message. The patches are computed by pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook import constants as c
from webhook.kube.client import Kube, KubeError, path_for

__all__ = ["NamespaceError", "add_patch", "list_rows", "remove_patch"]


class NamespaceError(Exception):
    """The namespace cannot be onboarded or removed; the message says why."""


def _meta(ns: Mapping[str, Any]) -> tuple[Mapping[str, str], Mapping[str, str]]:
    meta = ns.get("metadata") or {}
    return meta.get("labels") or {}, meta.get("annotations") or {}


def add_patch(
    ns: Mapping[str, Any], mesh_name: str, *, injection: bool = True, metrics: bool = False
) -> dict[str, Any]:
    labels, _ = _meta(ns)
    name = (ns.get("metadata") or {}).get("name")
    if str(labels.get(c.LABEL_IGNORE, "")).lower() == "true":
        raise NamespaceError(f"namespace {name!r} is labelled {c.LABEL_IGNORE}=true and is never onboarded")
    owner = labels.get(c.LABEL_MONITORED_BY)
    if owner and owner != mesh_name:
        raise NamespaceError(
            f"namespace {name!r} is already monitored by mesh {owner!r}; remove it from that mesh first"
        )
    annotations = {c.ANN_SIDECAR_INJECTION: "enabled" if injection else "disabled"}
    if metrics:
        annotations[c.ANN_METRICS] = "enabled"
    return {"metadata": {"labels": {c.LABEL_MONITORED_BY: mesh_name}, "annotations": annotations}}


def remove_patch(ns: Mapping[str, Any], mesh_name: str) -> dict[str, Any]:
    labels, annotations = _meta(ns)
    name = (ns.get("metadata") or {}).get("name")
    owner = labels.get(c.LABEL_MONITORED_BY)
    if owner != mesh_name:
        why = f"monitored by mesh {owner!r}" if owner else "not part of any mesh"
        raise NamespaceError(f"namespace {name!r} is {why}, not {mesh_name!r}")
    drop = {k: None for k in (c.ANN_SIDECAR_INJECTION, c.ANN_METRICS) if k in annotations}
    return {"metadata": {"labels": {c.LABEL_MONITORED_BY: None}, "annotations": drop}}


def list_rows(namespaces: list[Mapping[str, Any]], mesh_name: str | None) -> list[tuple[str, str, str, str]]:
    """(namespace, mesh, sidecar-injection, metrics) for monitored namespaces."""
    rows = []
    for ns in namespaces:
        labels, annotations = _meta(ns)
        mesh = labels.get(c.LABEL_MONITORED_BY)
        if not mesh or (mesh_name and mesh != mesh_name):
            continue
        rows.append(
            (
                str((ns.get("metadata") or {}).get("name")),
                mesh,
                annotations.get(c.ANN_SIDECAR_INJECTION, "-"),
                annotations.get(c.ANN_METRICS, "-"),
            )
        )
    return sorted(rows)


def _get(kube: Kube, name: str) -> dict[str, Any]:
    try:
        return kube.get(path_for("v1", "namespaces", name=name))
    except KubeError as exc:
        if exc.not_found:
            raise NamespaceError(f"namespace {name!r} not found") from None
        raise


def add(kube: Kube, name: str, mesh_name: str, *, injection: bool, metrics: bool) -> str:
    patch = add_patch(_get(kube, name), mesh_name, injection=injection, metrics=metrics)
    kube.merge_patch(path_for("v1", "namespaces", name=name), patch)
    state = "enabled" if injection else "disabled"
    return f"namespace [{name}] added to mesh [{mesh_name}] (sidecar injection {state})"


def remove(kube: Kube, name: str, mesh_name: str) -> str:
    kube.merge_patch(path_for("v1", "namespaces", name=name), remove_patch(_get(kube, name), mesh_name))
    return (
        f"namespace [{name}] removed from mesh [{mesh_name}]; running pods keep their sidecar until restarted"
    )


def table(kube: Kube, mesh_name: str | None) -> str:
    rows = list_rows(kube.get(path_for("v1", "namespaces")).get("items") or [], mesh_name)
    if not rows:
        return "no namespaces are part of " + (f"mesh [{mesh_name}]" if mesh_name else "any mesh")
    header = ("NAMESPACE", "MESH", "SIDECAR-INJECTION", "METRICS")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )
