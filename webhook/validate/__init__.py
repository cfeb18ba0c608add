"""The validating admission webhook (``POST /validate``): bad mesh configuration and bad onboarding
annotations are refused when they are written, with a message naming each field, instead of
surfacing later as skipped or denied pods. One module per validated kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from webhook import admission
from webhook.metrics import Metrics
from webhook.validate.meshconfig import validate_meshconfig
from webhook.validate.namespace import validate_namespace

__all__ = ["VALIDATORS", "Validator"]

VALIDATORS: dict[str, Callable[[Mapping[str, Any]], tuple[list[str], list[str]]]] = {
    "MeshConfig": validate_meshconfig,
    "Namespace": validate_namespace,
}


@dataclasses.dataclass
class Validator:
    metrics: Metrics

    async def review(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = admission.parse_review(body, kinds=tuple(VALIDATORS))
        except admission.ReviewError as exc:
            self.metrics.bad_requests.labels(exc.field).inc()
            return 400, exc.body()
        obj = request["object"]
        kind = (request.get("kind") or {}).get("kind") or obj.get("kind")
        errors, warnings = VALIDATORS[str(kind)](obj)
        name = (obj.get("metadata") or {}).get("name") or ""
        if errors:
            self.metrics.validations.labels(str(kind), "denied").inc()
            message = f"{kind} {name!r} rejected by fsm-onboard: " + "; ".join(errors)
            return 200, admission.deny(request["uid"], message, code=422, reason="Invalid")
        self.metrics.validations.labels(str(kind), "allowed").inc()
        return 200, admission.allow(request["uid"], warnings=warnings or None)
