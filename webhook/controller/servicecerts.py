"""Service certificates handed to proxies through their bootstrap Secret, renewed before expiry.

Each proxy's Secret carries the service identity cert of its ServiceAccount (CN
``<sa>.<ns>.<trust-domain>``) as ``service_cert.pem``/``service_key.pem``, issued in the admission
call. This controller watches the admission-made Secrets and, when the shared cert of an identity
is due (a third of its jittered life left, a new CA, or a changed
``spec.certificate.serviceCertValidityDuration``), writes the renewed cert into every Secret of
that identity; the kubelet refreshes the mounted files and the proxy reloads them. The
ServiceAccount is recorded on the Secret (annotation) so no bootstrap.yaml is parsed per check.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import timedelta

from webhook.certs.issuer import IssuedCert
from webhook.certs.service import ServiceCertCache
from webhook.inject.bootstrap import SERVICE_ACCOUNT_ANNOTATION
from webhook.kube.bootstrap import MANAGED_SELECTOR
from webhook.kube.client import Kube, KubeError, path_for
from webhook.kube.informer import Informer
from webhook.periodic import Periodic

__all__ = [
    "SERVICE_ACCOUNT_ANNOTATION",
    "SERVICE_CERT_KEY",
    "SERVICE_KEY_KEY",
    "ServiceCertPusher",
    "service_data",
]

log = logging.getLogger("fsm_onboard.servicecerts")

SERVICE_CERT_KEY, SERVICE_KEY_KEY = "service_cert.pem", "service_key.pem"


def service_data(issued: IssuedCert) -> dict[str, bytes]:
    return {SERVICE_CERT_KEY: issued.cert_pem, SERVICE_KEY_KEY: issued.key_pem}


class ServiceCertPusher:
    """Keeps every admission-made bootstrap Secret's service cert current."""

    def __init__(self, kube: Kube, cache: ServiceCertCache, validity: Callable[[], timedelta]):
        self.kube, self.cache, self.validity = kube, cache, validity
        self.pushed = 0
        self.secrets = Informer(kube, path_for("v1", "secrets"), name="bootstrap-secrets",
                                params={"labelSelector": MANAGED_SELECTOR})  # fmt: skip
        self._loop = Periodic(
            self.push_once, name="service-cert-pusher", log=log, what="service cert renewal"
        )

    def _cache(self) -> ServiceCertCache:
        """The cache for the configured validity: a changed MeshConfig re-issues every identity."""
        wanted = self.validity()
        if wanted != self.cache.validity:
            self.cache = ServiceCertCache(self.cache.issuer, wanted)
        return self.cache

    def current(self, sa: str, ns: str) -> IssuedCert:
        """The identity's cert (the admission path puts it into a new pod's Secret)."""
        return self._cache().get(sa, ns)

    def push_once(self) -> int:
        """Patch the Secrets whose service cert is not the identity's current one; returns how many."""
        if not self.secrets.synced.is_set():
            return 0
        cache = self._cache()
        patched = 0
        for secret in self.secrets.items():
            meta = secret.get("metadata") or {}
            sa = (meta.get("annotations") or {}).get(SERVICE_ACCOUNT_ANNOTATION)
            if not sa:
                continue
            issued = cache.get(sa, meta["namespace"])
            have = (secret.get("data") or {}).get(SERVICE_CERT_KEY)
            if have and base64.b64decode(have) == issued.cert_pem:
                continue
            data = {k: base64.b64encode(v).decode() for k, v in service_data(issued).items()}
            path = path_for("v1", "secrets", meta["namespace"], meta["name"])
            try:
                self.kube.merge_patch(path, {"data": data})
                patched += 1
            except KubeError as exc:
                if not exc.not_found:
                    log.warning(
                        "renewing the service cert in %s/%s: %s", meta["namespace"], meta["name"], exc
                    )
        if patched:
            log.info("renewed service certificates in %d bootstrap Secret(s)", patched)
        self.pushed += patched
        return patched

    def start(self, interval: float = 30.0) -> None:
        self.secrets.start()
        self._loop.start(interval)

    def stop(self) -> None:
        self._loop.stop()
        self.secrets.stop()
