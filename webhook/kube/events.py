"""Kubernetes Events for admissions that went wrong or were skipped for an unusual reason (as Linkerd does).

The pod does not exist yet during admission, so the Event goes on its controlling owner (the
ReplicaSet, Job, ...) when it has one, else on the pod's name. Posting never blocks admission: it
runs in a thread and a failure is only logged.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from webhook.inject import Outcome, Reason
from webhook.kube.client import Kube, KubeError, path_for

__all__ = ["EventRecorder", "event_for"]

log = logging.getLogger("fsm_onboard.events")

# Skips worth telling the workload's owner about: the pod is in an onboarded namespace but cannot
# join. (Already-injected is routine: every pod is seen again when the API server re-invokes us.)
UNUSUAL_SKIPS = frozenset({Reason.HOST_NETWORK})


def event_for(
    pod: dict[str, Any], namespace: str, outcome: Outcome | None, error: str | None, now: datetime
) -> dict[str, Any] | None:
    """The Event to record for this admission, or None (pure)."""
    if error:
        reason, kind, message = "InjectionFailed", "Warning", error
    elif outcome is not None and outcome.denied:
        reason, kind, message = "InjectionDenied", "Warning", outcome.decision.message
    elif outcome is not None and outcome.rendered is None and outcome.decision.reason in UNUSUAL_SKIPS:
        reason, kind, message = "InjectionSkipped", "Normal", outcome.decision.message
    else:
        return None
    meta = pod.get("metadata") or {}
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if owner:
        involved = {
            "apiVersion": owner.get("apiVersion"),
            "kind": owner.get("kind"),
            "name": owner.get("name"),
            "uid": owner.get("uid"),
            "namespace": namespace,
        }
    else:
        involved = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta.get("name") or meta.get("generateName") or "",
            "namespace": namespace,
        }
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{involved['name'] or 'pod'}.fsm-onboard.{uuid.uuid4().hex[:10]}",
            "namespace": namespace,
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message[:1024],
        "type": kind,
        "source": {"component": "fsm-onboard"},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": "fsm-onboard",
    }


class EventRecorder:
    def __init__(self, kube: Kube):
        self.kube = kube

    def record(
        self, pod: dict[str, Any], namespace: str, outcome: Outcome | None, error: str | None
    ) -> str | None:
        event = event_for(pod, namespace, outcome, error, datetime.now(UTC))
        if event is None:
            return None
        threading.Thread(target=self._post, args=(event,), daemon=True).start()
        return str(event["reason"])

    def _post(self, event: dict[str, Any]) -> None:
        try:
            self.kube.create(path_for("v1", "events", event["metadata"]["namespace"]), event)
        except KubeError as exc:
            log.warning("could not record Event %s: %s", event["reason"], exc)
