"""The mutating admission handler: AdmissionReview body in → decision → patch (or denial) out.

It only orchestrates: the envelope (``admission``), the engine (``inject``), the namespace and
MeshConfig sources (a standalone stand-in or the informer caches), side effects in cluster mode
(the bootstrap Secret, never on dryRun), and metrics. Every failure ends as a 400 or a denial.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from webhook import admission
from webhook import constants as c
from webhook.inject import Context, Outcome, Rendered, Templates, inject
from webhook.meshconfig import MeshConfig
from webhook.metrics import Metrics

__all__ = ["Mutator", "standalone_namespace"]

log = logging.getLogger("fsm_onboard.mutate")

NamespaceLookup = Callable[[str], Mapping[str, Any] | None]
# Called for an injected pod outside dryRun (cluster mode: creates the bootstrap Secret).
BootstrapWriter = Callable[[admission.AdmissionRequest, Rendered], Awaitable[None]]
# Called after every answered review (cluster mode: Events); returns the Event reason it recorded.
ResultHook = Callable[[dict[str, Any], str, Outcome | None, str | None], str | None]


def standalone_namespace(mesh_name: str) -> NamespaceLookup:
    """Standalone mode: every namespace is monitored and silent, so the pod's annotation decides."""

    def lookup(name: str) -> Mapping[str, Any]:
        return {"metadata": {"name": name, "labels": {c.LABEL_MONITORED_BY: mesh_name}}}

    return lookup


@dataclasses.dataclass
class Mutator:
    templates: Templates
    ctx: Context
    namespaces: NamespaceLookup
    mesh_config: Callable[[], MeshConfig]
    metrics: Metrics = dataclasses.field(default_factory=Metrics.create)
    bootstrap_writer: BootstrapWriter | None = None
    on_result: ResultHook | None = None
    # Cluster mode: read a namespace live when the cache looks stale (see ClusterServer).
    namespace_refresh: (
        Callable[[str, Mapping[str, Any] | None], Awaitable[Mapping[str, Any] | None]] | None
    ) = None

    @staticmethod
    def namespace_of(request: admission.AdmissionRequest) -> str:
        """The pod's namespace: the request's (a create may leave the object's empty)."""
        pod = request["object"]
        return request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "default"

    def evaluate(
        self, request: admission.AdmissionRequest, namespace: Mapping[str, Any] | None = None
    ) -> Outcome:
        pod = request["object"]
        ns_name = self.namespace_of(request)
        if namespace is None:
            namespace = self.namespaces(ns_name)
        if namespace is None:
            # Unknown to the cache: treat as not monitored (the webhook's namespaceSelector agrees).
            namespace = {"metadata": {"name": ns_name}}
        return inject(pod, namespace, self.mesh_config(), self.templates, self.ctx)

    async def review(self, body: bytes) -> tuple[int, bytes]:
        """HTTP status and body for one AdmissionReview."""
        started = time.perf_counter()
        try:
            request = admission.parse_review(body)
        except admission.ReviewError as exc:
            self.metrics.bad_requests.labels(exc.field).inc()
            return 400, exc.body()
        uid = request["uid"]
        outcome: Outcome | None = None
        error: str | None = None
        try:
            namespace = None
            if self.namespace_refresh is not None:
                ns_name = self.namespace_of(request)
                namespace = await self.namespace_refresh(ns_name, self.namespaces(ns_name))
            outcome = self.evaluate(request, namespace)
            if outcome.denied:
                result, answer = "denied", admission.deny(uid, outcome.decision.message)
            elif outcome.rendered is None:
                result, answer = "skipped", admission.allow(uid)
            else:
                if self.bootstrap_writer is not None and not request.get("dryRun"):
                    with self.metrics.secret_latency.time():
                        await self.bootstrap_writer(request, outcome.rendered)
                result = "injected"
                answer = admission.allow(uid, outcome.patch, outcome.warnings)
            reason = outcome.decision.reason.value
        except Exception as exc:  # any failure must become a clear denial, not a 500
            log.warning("admission %s failed: %s", uid, exc, exc_info=not isinstance(exc, RuntimeError))
            result, reason = "error", "internal-error"
            error = f"fsm-onboard could not inject this pod: {exc}"
            answer = admission.deny(uid, error, code=500, reason="InternalError")
        self.metrics.admissions.labels(result, reason).inc()
        if self.on_result is not None:
            try:
                recorded = self.on_result(request["object"], self.namespace_of(request), outcome, error)
            except Exception as exc:  # an Event is a courtesy; the answer stands
                log.warning("admission %s: recording the Event failed: %s", uid, exc)
                recorded = None
            if recorded:
                self.metrics.events.labels(recorded).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        return 200, answer
