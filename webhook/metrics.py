"""Prometheus metrics of the webhook, on a registry of their own (one per app instance)."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["Metrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclasses.dataclass
class Metrics:
    registry: CollectorRegistry
    admissions: Counter
    latency: Histogram
    bad_requests: Counter
    events: Counter
    secret_latency: Histogram
    validations: Counter

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            admissions=Counter(
                "fsm_onboard_admissions",
                "Pod admissions by result (injected, skipped, denied, error) and reason code",
                ["result", "reason"],
                registry=registry,
            ),
            latency=Histogram(
                "fsm_onboard_admission_seconds",
                "Time to answer one AdmissionReview, from body read to response built",
                buckets=_BUCKETS,
                registry=registry,
            ),
            bad_requests=Counter(
                "fsm_onboard_bad_requests",
                "Requests answered 400/413 because the AdmissionReview was malformed or too large",
                ["field"],
                registry=registry,
            ),
            secret_latency=Histogram(
                "fsm_onboard_bootstrap_secret_seconds",
                "Time to create one bootstrap Secret (certificate issue + API call) in the admission path",
                buckets=_BUCKETS,
                registry=registry,
            ),
            validations=Counter(
                "fsm_onboard_validations",
                "Validating admissions (MeshConfig, Namespace) by kind and result",
                ["kind", "result"],
                registry=registry,
            ),
            events=Counter(
                "fsm_onboard_events",
                "Kubernetes Events recorded for failed, denied or unusually skipped injections",
                ["reason"],
                registry=registry,
            ),
        )
