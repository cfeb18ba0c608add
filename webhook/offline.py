"""Offline injection and explanation of manifests (``fsm-onboard inject`` / ``explain``).

Same engine as the webhook: each Pod, and each pod template of a workload, goes through
``webhook.inject.inject`` with the namespace the user names (``--namespace-file``) or, by
default, a namespace onboarded with injection enabled — so, like ``istioctl kube-inject``,
everything is injected unless it opts out.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any

import yaml

from webhook import constants as c
from webhook.inject import Context, Outcome, Templates, inject
from webhook.inject.bootstrap import bootstrap_secret
from webhook.inject.shape import pod_shape_problem
from webhook.meshconfig import MeshConfig

__all__ = ["ManifestError", "explain_documents", "inject_documents", "load_documents", "onboarded_namespace"]

# kind → path from the object to its pod template (metadata + spec).
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


class ManifestError(ValueError):
    """A document cannot be read or injected; the message names the document number."""


def load_documents(text: str) -> list[Any]:
    """Every YAML document, in order (empty documents dropped); errors name the document number."""
    docs: list[Any] = []
    loader = yaml.safe_load_all(text)
    index = 0
    while True:
        index += 1
        try:
            doc = next(loader)
        except StopIteration:
            break
        except yaml.YAMLError as exc:
            raise ManifestError(f"document {index}: not valid YAML: {exc}") from None
        if doc is not None:
            docs.append(doc)
    return docs


def onboarded_namespace(name: str, mesh_name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {c.LABEL_MONITORED_BY: mesh_name},
            "annotations": {c.ANN_SIDECAR_INJECTION: "enabled"},
        }
    }


@dataclasses.dataclass(frozen=True)
class Target:
    """One pod-shaped thing in the input: where it is, and how to read and write it."""

    doc_index: int
    kind: str
    name: str
    namespace: str
    pod: dict[str, Any]
    holder: dict[str, Any] | None  # the dict holding the template (None for a bare Pod)
    key: str


def _targets(docs: list[Any], default_ns: str) -> Iterator[Target]:
    for index, doc in enumerate(docs, start=1):
        if not isinstance(doc, dict):
            raise ManifestError(f"document {index}: expected a Kubernetes object, got {type(doc).__name__}")
        items = doc.get("items") if doc.get("kind") == "List" else [doc]
        if not isinstance(items, list):
            raise ManifestError(f"document {index}: List.items must be a list")
        for obj in items:
            if not isinstance(obj, dict):
                raise ManifestError(f"document {index}: expected a Kubernetes object in the List")
            kind = str(obj.get("kind", ""))
            meta = obj.get("metadata") or {}
            name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
            ns = str(meta.get("namespace") or default_ns) if isinstance(meta, dict) else default_ns
            if kind == "Pod":
                _check_shape(obj, index, kind, name, "")
                yield Target(index, kind, name, ns, obj, None, "")
                continue
            path = TEMPLATE_PATHS.get(kind)
            if path is None:
                continue
            holder: Any = obj
            for part in path[:-1]:
                holder = holder.get(part) if isinstance(holder, dict) else None
            template = holder.get(path[-1]) if isinstance(holder, dict) else None
            if not isinstance(template, dict):
                raise ManifestError(f"document {index}: {kind} {name!r} has no {'.'.join(path)}")
            _check_shape(template, index, kind, name, ".".join(path) + ".")
            yield Target(index, kind, name, ns, template, holder, path[-1])


def _check_shape(pod: dict[str, Any], index: int, kind: str, name: str, prefix: str) -> None:
    problem = pod_shape_problem(pod)
    if problem is not None:
        raise ManifestError(f"document {index}: {kind} {name!r}: {prefix}{problem[0]}: {problem[1]}")


def inject_documents(
    docs: list[Any],
    config: MeshConfig,
    templates: Templates,
    ctx: Context,
    *,
    namespace: dict[str, Any] | None = None,
    default_ns: str = "default",
    with_secrets: bool = True,
) -> tuple[list[Any], list[str]]:
    """Inject in place; returns the documents (plus bootstrap Secrets) and warnings for stderr."""
    warnings: list[str] = []
    secrets: list[Any] = []
    for t in list(_targets(docs, default_ns)):
        ns_obj = namespace or onboarded_namespace(t.namespace, ctx.mesh_name)
        outcome = inject(t.pod, ns_obj, config, templates, ctx)
        where = f"document {t.doc_index}: {t.kind} {t.name!r}"
        if outcome.denied:
            raise ManifestError(f"{where}: {outcome.decision.message}")
        if outcome.rendered is None:
            warnings.append(f"{where}: not injected: {outcome.decision.reason.sentence}")
            continue
        warnings.extend(f"{where}: {w}" for w in outcome.warnings)
        if t.holder is None:
            t.pod.clear()
            t.pod.update(outcome.rendered.pod)
        else:
            t.holder[t.key] = outcome.rendered.pod
        if with_secrets:
            secrets.append(_plain_secret(bootstrap_secret(outcome.rendered, t.namespace, source="offline")))
    return docs + secrets, warnings


def _plain_secret(secret: dict[str, Any]) -> dict[str, Any]:
    """Readable stringData instead of base64 for a manifest a person reviews."""
    out = {k: v for k, v in secret.items() if k != "data"}
    out["stringData"] = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return out


def explain_documents(
    docs: list[Any],
    config: MeshConfig,
    templates: Templates,
    ctx: Context,
    *,
    namespace: dict[str, Any] | None = None,
    default_ns: str = "default",
) -> list[tuple[str, Outcome]]:
    """For each pod or template: a label and the outcome (decision, reason, warnings)."""
    out = []
    for t in _targets(docs, default_ns):
        ns_obj = namespace or onboarded_namespace(t.namespace, ctx.mesh_name)
        outcome = inject(t.pod, ns_obj, config, templates, ctx)
        out.append((f"document {t.doc_index}: {t.kind} {t.namespace}/{t.name}", outcome))
    return out
