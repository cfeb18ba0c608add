"""The webhook configurations fsm-onboard registers for itself, and the loop that keeps them so.

``desired_config`` (mutating) and ``desired_validating_config`` are pure: REFERENCE §1's selectors
and FSM's names, plus what fsm-onboard adds (``reinvocationPolicy: IfNeeded``, a configurable
``failurePolicy`` and timeout). ``Registrar`` creates one, and puts it back whenever an informer
sees it deleted or edited (Kopf's managed webhook idea: create, 409 is fine, replace on drift).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from webhook import constants as c
from webhook.kube.client import Kube, KubeError, path_for
from webhook.kube.informer import Informer

__all__ = [
    "Registrar",
    "WebhookSettings",
    "desired_config",
    "desired_validating_config",
    "validator_config_name",
    "webhook_config_name",
]

log = logging.getLogger("fsm_onboard.webhookconfig")

API = "admissionregistration.k8s.io/v1"
PLURAL = "mutatingwebhookconfigurations"
VALIDATING_PLURAL = "validatingwebhookconfigurations"
MUTATE_PATH = "/mutate-pod-creation"
VALIDATE_PATH = "/validate"
WEBHOOK_NAME = "fsm-inject.k8s.io"
VALIDATOR_NAME = "fsm-validator.k8s.io"


def webhook_config_name(mesh_name: str) -> str:
    return f"fsm-webhook-{mesh_name}"


def validator_config_name(mesh_name: str) -> str:
    return f"fsm-validator-{mesh_name}"


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    mesh_name: str
    mesh_namespace: str
    url: str = ""  # out-of-cluster: https://host:port (the path is added)
    service_name: str = "fsm-onboard-webhook"
    service_port: int = 443
    failure_policy: str = "Fail"
    timeout_seconds: int = 10
    # An ownerReference (a cluster-scoped object, e.g. the release's ClusterRole): when it is
    # deleted, Kubernetes' garbage collector deletes the configurations, so uninstalling can never
    # leave a failurePolicy=Fail webhook pointing at nothing.
    owner: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.failure_policy not in ("Fail", "Ignore"):
            raise ValueError(f"--failure-policy: expected Fail or Ignore, got {self.failure_policy!r}")
        if not 1 <= self.timeout_seconds <= 30:
            raise ValueError(f"--webhook-timeout: expected 1-30 seconds, got {self.timeout_seconds}")
        if self.url and not self.url.startswith("https://"):
            raise ValueError(f"--webhook-url: expected an https:// URL, got {self.url!r}")


def _client_config(s: WebhookSettings, ca_bundle: bytes, path: str) -> dict[str, Any]:
    client_config: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle).decode()}
    if s.url:
        client_config["url"] = s.url.rstrip("/") + path
    else:
        client_config["service"] = {
            "name": s.service_name,
            "namespace": s.mesh_namespace,
            "path": path,
            "port": s.service_port,
        }
    return client_config


def _metadata(s: WebhookSettings, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "fsm-onboard", c.LABEL_MONITORED_BY: s.mesh_name},
    }
    if s.owner:
        meta["ownerReferences"] = [dict(s.owner)]
    return meta


def desired_validating_config(s: WebhookSettings, ca_bundle: bytes) -> dict[str, Any]:
    """fsm-validator: MeshConfigs of this mesh's namespace and onboarded Namespaces, on create/update."""
    common = {
        "clientConfig": _client_config(s, ca_bundle, VALIDATE_PATH),
        "failurePolicy": s.failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": s.timeout_seconds,
    }
    return {
        "apiVersion": API,
        "kind": "ValidatingWebhookConfiguration",
        "metadata": _metadata(s, validator_config_name(s.mesh_name)),
        "webhooks": [
            {
                "name": f"meshconfig.{VALIDATOR_NAME}",
                **common,
                "rules": [
                    {
                        "operations": ["CREATE", "UPDATE"],
                        "apiGroups": ["config.flomesh.io"],
                        "apiVersions": ["*"],
                        "resources": ["meshconfigs"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [s.mesh_namespace]}
                    ]
                },
                "objectSelector": {},
            },
            {
                "name": f"namespace.{VALIDATOR_NAME}",
                **common,
                "rules": [
                    {
                        "operations": ["CREATE", "UPDATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["namespaces"],
                        "scope": "Cluster",
                    }
                ],
                "namespaceSelector": {},
                # Only namespaces of this mesh: a broken webhook never blocks anybody else's.
                "objectSelector": {"matchLabels": {c.LABEL_MONITORED_BY: s.mesh_name}},
            },
        ],
    }


def desired_config(s: WebhookSettings, ca_bundle: bytes) -> dict[str, Any]:
    client_config = _client_config(s, ca_bundle, MUTATE_PATH)
    return {
        "apiVersion": API,
        "kind": "MutatingWebhookConfiguration",
        "metadata": _metadata(s, webhook_config_name(s.mesh_name)),
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client_config,
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": s.failure_policy,
                "matchPolicy": "Equivalent",
                "sideEffects": "NoneOnDryRun",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": s.timeout_seconds,
                "reinvocationPolicy": "IfNeeded",
                "namespaceSelector": {
                    "matchLabels": {c.LABEL_MONITORED_BY: s.mesh_name},
                    "matchExpressions": [
                        {"key": c.LABEL_IGNORE, "operator": "DoesNotExist"},
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": [s.mesh_namespace],
                        },
                        {"key": "control-plane", "operator": "DoesNotExist"},
                    ],
                },
                "objectSelector": {},
            }
        ],
    }


def _drifted(actual: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Compare only what we own; the API server fills defaults we do not set."""
    owners = desired["metadata"].get("ownerReferences")
    if (
        owners is not None
        and [
            {k: r.get(k) for k in o}
            for r, o in zip(actual["metadata"].get("ownerReferences") or [], owners, strict=False)
        ]
        != owners
    ):
        return True
    want = desired["webhooks"]
    have = actual.get("webhooks") or []
    if len(have) != len(want):
        return True
    for h, w in zip(have, want, strict=True):
        for key, value in w.items():
            if key == "rules":
                if [
                    {k: r.get(k) for k in rule} for r, rule in zip(h.get("rules") or [], value, strict=False)
                ] != value:
                    return True
            elif h.get(key) != value:
                return True
    return False


class Registrar:
    """Creates one webhook configuration and restores it within moments of a delete or an edit."""

    def __init__(self, kube: Kube, plural: str, name: str, desired: Callable[[], dict[str, Any]]):
        self.kube, self.plural, self.name, self.desired = kube, plural, name, desired
        self.kind = (
            "ValidatingWebhookConfiguration"
            if plural == VALIDATING_PLURAL
            else "MutatingWebhookConfiguration"
        )
        self.restores = 0
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.informer = Informer(
            kube,
            path_for(API, plural),
            name=f"{plural}/{self.name}",
            params={"fieldSelector": f"metadata.name={self.name}"},
            on_event=lambda kind, obj: self._kick.set(),
        )

    @classmethod
    def mutating(cls, kube: Kube, s: WebhookSettings, ca_bundle: Callable[[], bytes]) -> Registrar:
        return cls(kube, PLURAL, webhook_config_name(s.mesh_name), lambda: desired_config(s, ca_bundle()))

    @classmethod
    def validating(cls, kube: Kube, s: WebhookSettings, ca_bundle: Callable[[], bytes]) -> Registrar:
        return cls(
            kube,
            VALIDATING_PLURAL,
            validator_config_name(s.mesh_name),
            lambda: desired_validating_config(s, ca_bundle()),
        )

    def reconcile(self) -> bool:
        """Make the stored configuration match; True when it had to write."""
        desired = self.desired()
        path = path_for(API, self.plural, name=self.name)
        try:
            actual = self.kube.get(path)
        except KubeError as exc:
            if not exc.not_found:
                raise
            try:
                self.kube.create(path_for(API, self.plural), desired)
                log.info("created %s %s", self.kind, self.name)
            except KubeError as again:
                if not again.conflict:
                    raise
            return True
        if not _drifted(actual, desired):
            return False
        desired["metadata"]["resourceVersion"] = actual["metadata"]["resourceVersion"]
        self.kube.replace(path, desired)
        log.info("restored %s %s", self.kind, self.name)
        return True

    def start(self, resync: float = 30.0) -> None:
        self.reconcile()
        self.informer.start()

        def loop() -> None:
            while not self._stop.is_set():
                self._kick.wait(resync)
                self._kick.clear()
                if self._stop.is_set():
                    return
                try:
                    if self.reconcile():
                        self.restores += 1
                except Exception as exc:  # keep reconciling: a dead loop would leave a deleted config gone
                    log.warning("%s %s: %s; retrying", self.kind, self.name, exc)
                    self._stop.wait(1.0)
                    self._kick.set()

        self._thread = threading.Thread(target=loop, name="webhook-registrar", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        self.informer.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def delete(self) -> None:
        try:
            self.kube.delete(path_for(API, self.plural, name=self.name))
        except KubeError as exc:
            if not exc.not_found:
                raise
