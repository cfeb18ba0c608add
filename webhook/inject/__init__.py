"""The injection engine: decide → resolve settings → render → patch. Pure functions on raw dicts.

``inject`` is the one entry point the admission handler, the offline ``fsm-onboard inject`` CLI and
``explain`` share, so all three always agree.
"""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from collections.abc import Callable, Mapping
from typing import Any

from webhook.inject.decide import Decision, Reason, decide, is_injected
from webhook.inject.patch import make_patch
from webhook.inject.render import Context, InjectionConflict, Rendered, render_pod
from webhook.inject.settings import AnnotationError, Settings, resolve_settings
from webhook.inject.templates import Templates, load_templates
from webhook.meshconfig import MeshConfig

__all__ = [
    "AnnotationError",
    "Context",
    "Decision",
    "Outcome",
    "Reason",
    "Rendered",
    "Settings",
    "Templates",
    "decide",
    "inject",
    "is_injected",
    "load_templates",
]


@dataclasses.dataclass(frozen=True)
class Outcome:
    decision: Decision
    # Set when the pod is injected.
    rendered: Rendered | None = None
    patch: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def denied(self) -> bool:
        return self.decision.denied

    @property
    def warnings(self) -> list[str]:
        return self.rendered.warnings if self.rendered else []


def _strip(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The pod without managedFields (huge, and never ours to patch)."""
    meta = pod.get("metadata")
    if isinstance(meta, Mapping) and "managedFields" in meta:
        return {**pod, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return dict(pod)


def inject(
    pod: Mapping[str, Any],
    namespace: Mapping[str, Any],
    config: MeshConfig,
    templates: Templates,
    ctx: Context,
    *,
    new_uuid: Callable[[], str] = lambda: str(uuidlib.uuid4()),
) -> Outcome:
    """Decide for one raw pod and, when it joins the mesh, render it and diff it into a JSONPatch."""
    decision = decide(pod, namespace, mesh_name=ctx.mesh_name, mesh_namespace=ctx.mesh_namespace)
    if not decision.inject:
        return Outcome(decision)
    try:
        settings = resolve_settings(pod, namespace, config)
    except AnnotationError as exc:
        return Outcome(Decision(False, Reason.INVALID_ANNOTATION, error=str(exc)))
    ns_name = (
        (namespace.get("metadata") or {}).get("name")
        or (pod.get("metadata") or {}).get("namespace")
        or "default"
    )
    original = _strip(pod)
    try:
        rendered = render_pod(original, ns_name, settings, templates, ctx, new_uuid())
    except InjectionConflict as exc:
        return Outcome(Decision(False, Reason.NAME_CONFLICT, error=str(exc)))
    return Outcome(decision, rendered, make_patch(original, rendered.pod))
