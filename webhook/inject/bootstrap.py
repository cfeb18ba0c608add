"""The bootstrap Secret ``sidecar-bootstrap-config-<uuid>`` mounted at /etc/pipy in the sidecar."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import yaml

from webhook.inject.render import Rendered

__all__ = ["SERVICE_ACCOUNT_ANNOTATION", "SOURCE_LABEL", "bootstrap_secret"]


SOURCE_LABEL = "fsm-onboard.flomesh.io/source"
SERVICE_ACCOUNT_ANNOTATION = "fsm-onboard.flomesh.io/service-account"


def bootstrap_secret(
    rendered: Rendered,
    namespace: str,
    certs: Mapping[str, bytes] | None = None,
    owner: Mapping[str, Any] | None = None,
    *,
    source: str = "admission",
) -> dict[str, Any]:
    """The Secret object: ``bootstrap.yaml`` plus, when given, ``cacert.pem``/``repo_cert.pem``/``repo_key.pem``.

    ``owner`` is an ownerReference (the pod, once it exists) so the Secret goes away with it.
    ``source`` says who made it: only ``admission`` Secrets (one per pod) are owned and swept by the
    server; an ``offline`` one (``fsm-onboard inject``) is shared by a workload's replicas.
    """
    data = {"bootstrap.yaml": yaml.safe_dump(rendered.bootstrap, sort_keys=False).encode()}
    data.update(certs or {})
    meta: dict[str, Any] = {
        "name": rendered.secret_name,
        "namespace": namespace,
        # Which identity's service cert this Secret carries (the controller renews it by identity).
        "annotations": {SERVICE_ACCOUNT_ANNOTATION: rendered.bootstrap["service_account"]},
        "labels": {
            "fsm-proxy-uuid": rendered.uuid,
            "app.kubernetes.io/managed-by": "fsm-onboard",
            SOURCE_LABEL: source,
        },
    }
    if owner:
        meta["ownerReferences"] = [dict(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
