"""Whether a pod joins the mesh: FSM's rules as one pure function, with a reason code for each outcome.

The same ``Reason`` codes label metrics, fill Events, answer ``fsm-onboard explain`` and phrase
denials, so a user sees one vocabulary everywhere (Linkerd's "report" idea).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from webhook import constants as c
from webhook.values import parse_switch

__all__ = ["Decision", "Reason", "decide"]


class Reason(enum.StrEnum):
    HOST_NETWORK = "host-network"
    SYSTEM_NAMESPACE = "system-namespace"
    MESH_NAMESPACE = "mesh-namespace"
    NAMESPACE_IGNORED = "namespace-ignored"
    NAMESPACE_NOT_MONITORED = "namespace-not-monitored"
    ALREADY_INJECTED = "already-injected"
    INVALID_ANNOTATION = "invalid-annotation"
    NAME_CONFLICT = "name-conflict"
    POD_ENABLED = "pod-enabled"
    POD_DISABLED = "pod-disabled"
    NAMESPACE_ENABLED = "namespace-enabled"
    NAMESPACE_DISABLED = "namespace-disabled"
    NOT_ENABLED = "not-enabled"

    @property
    def sentence(self) -> str:
        return _SENTENCES[self]


_SENTENCES = {
    Reason.HOST_NETWORK: "the pod uses the host network (spec.hostNetwork: true)",
    Reason.SYSTEM_NAMESPACE: "the namespace is a Kubernetes system namespace",
    Reason.MESH_NAMESPACE: "the namespace is the mesh's own control-plane namespace",
    Reason.NAMESPACE_IGNORED: f"the namespace is labelled {c.LABEL_IGNORE}=true",
    Reason.NAMESPACE_NOT_MONITORED: f"the namespace is not labelled {c.LABEL_MONITORED_BY}=<this mesh>",
    Reason.ALREADY_INJECTED: "the pod already carries the sidecar",
    Reason.INVALID_ANNOTATION: f"an {c.ANN_SIDECAR_INJECTION} annotation has an invalid value",
    Reason.NAME_CONFLICT: "the pod already uses a container or volume name the injection adds",
    Reason.POD_ENABLED: f"the pod is annotated {c.ANN_SIDECAR_INJECTION}: enabled",
    Reason.POD_DISABLED: f"the pod is annotated {c.ANN_SIDECAR_INJECTION}: disabled",
    Reason.NAMESPACE_ENABLED: f"the namespace is annotated {c.ANN_SIDECAR_INJECTION}: enabled",
    Reason.NAMESPACE_DISABLED: f"the namespace is annotated {c.ANN_SIDECAR_INJECTION}: disabled",
    Reason.NOT_ENABLED: f"neither the pod nor the namespace is annotated {c.ANN_SIDECAR_INJECTION}: enabled",
}


@dataclasses.dataclass(frozen=True)
class Decision:
    inject: bool
    reason: Reason
    # Set only for INVALID_ANNOTATION: the admission is denied with this message.
    error: str = ""

    @property
    def denied(self) -> bool:
        return bool(self.error)

    @property
    def message(self) -> str:
        verb = "inject" if self.inject else "skip"
        return self.error or f"{verb}: {self.reason.sentence}"


def _meta(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, str]:
    meta = (obj or {}).get("metadata") or {}
    return meta.get(key) or {}


def is_injected(pod: Mapping[str, Any]) -> bool:
    """True for pods we injected (status annotation) or FSM did (its uuid label and sidecar)."""
    if c.ANN_SIDECAR_STATUS in _meta(pod, "annotations"):
        return True
    spec = pod.get("spec") or {}
    names = {ct.get("name") for ct in (spec.get("containers") or []) + (spec.get("initContainers") or [])}
    return c.LABEL_PROXY_UUID in _meta(pod, "labels") and c.SIDECAR_CONTAINER_NAME in names


def _switch(annotations: Mapping[str, str], kind: str, name: str) -> tuple[bool | None, str]:
    raw = annotations.get(c.ANN_SIDECAR_INJECTION)
    if raw is None:
        return None, ""
    try:
        return parse_switch(raw), ""
    except ValueError as exc:
        return None, f"{kind} {name!r}: annotation {c.ANN_SIDECAR_INJECTION}: {exc}"


def decide(
    pod: Mapping[str, Any],
    namespace: Mapping[str, Any],
    *,
    mesh_name: str,
    mesh_namespace: str,
) -> Decision:
    """FSM's injection rules in FSM's order (REFERENCE §1); ``namespace`` is the Namespace object."""
    if (pod.get("spec") or {}).get("hostNetwork") is True:
        return Decision(False, Reason.HOST_NETWORK)
    ns_name = (
        (namespace.get("metadata") or {}).get("name") or (pod.get("metadata") or {}).get("namespace") or ""
    )
    if ns_name in c.SYSTEM_NAMESPACES:
        return Decision(False, Reason.SYSTEM_NAMESPACE)
    if ns_name == mesh_namespace:
        return Decision(False, Reason.MESH_NAMESPACE)
    ns_labels = _meta(namespace, "labels")
    if str(ns_labels.get(c.LABEL_IGNORE, "")).lower() == "true":
        return Decision(False, Reason.NAMESPACE_IGNORED)
    if ns_labels.get(c.LABEL_MONITORED_BY) != mesh_name:
        return Decision(False, Reason.NAMESPACE_NOT_MONITORED)
    pod_name = (
        (pod.get("metadata") or {}).get("name") or (pod.get("metadata") or {}).get("generateName") or ""
    )
    pod_switch, pod_error = _switch(_meta(pod, "annotations"), "pod", pod_name)
    ns_switch, ns_error = _switch(_meta(namespace, "annotations"), "namespace", ns_name)
    if pod_error or ns_error:
        return Decision(False, Reason.INVALID_ANNOTATION, error=pod_error or ns_error)
    if is_injected(pod):
        return Decision(False, Reason.ALREADY_INJECTED)
    if pod_switch is True:
        return Decision(True, Reason.POD_ENABLED)
    if pod_switch is False:
        return Decision(False, Reason.POD_DISABLED)
    if ns_switch is True:
        return Decision(True, Reason.NAMESPACE_ENABLED)
    if ns_switch is False:
        return Decision(False, Reason.NAMESPACE_DISABLED)
    return Decision(False, Reason.NOT_ENABLED)
