"""Kubernetes Events for admissions that went wrong or were skipped for an unusual reason (as Linkerd does).

The pod does not exist yet during admission, so the Event goes on its controlling owner (the
ReplicaSet, Job, ...) when it has one, else on the pod's name. Posting never blocks admission: it
runs in a thread and a failure is only logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from webhook.inject import Outcome, Reason
from webhook.kube.client import Kube, path_for

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
    refs = meta.get("ownerReferences")
    owner = (
        next((r for r in refs if isinstance(r, dict) and r.get("controller")), None)
        if isinstance(refs, list)
        else None
    )
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
    """Posts Events from one worker thread; a burst beyond ``capacity`` pending Events is dropped
    (and counted) rather than growing threads or memory during a storm of denials."""

    def __init__(self, kube: Kube, capacity: int = 1000):
        self.kube = kube
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=capacity)
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(
        self, pod: dict[str, Any], namespace: str, outcome: Outcome | None, error: str | None
    ) -> str | None:
        event = event_for(pod, namespace, outcome, error, datetime.now(UTC))
        if event is None:
            return None
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._drain, name="event-recorder", daemon=True)
                self._worker.start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            return None
        return str(event["reason"])

    def _drain(self) -> None:
        while True:
            event = self._queue.get()
            try:
                self.kube.create(path_for("v1", "events", event["metadata"]["namespace"]), event)
            except Exception as exc:  # an Event is a courtesy: log and go on
                log.warning("could not record Event %s: %s", event["reason"], exc)
