"""Keeps one webhook replica's certificates in step with the mesh CA Secret.

On start: create-or-read the CA Secret (replicas agree on one CA), build the `Issuer`, write the
serving cert into a cert dir (a `CertReloader` swaps it into the live TLS context) and set the
webhook configurations' caBundle to the trust bundle. Then, every `interval`: re-read the Secret;
follow a CA change (rotation) and renew the serving cert before it expires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from webhook.certs import kube
from webhook.certs.ca import CA, DEFAULT_CA_VALIDITY, load_cert_pem, public_key_matches
from webhook.certs.errors import CertError
from webhook.certs.files import CA_CERT, TLS_CERT, TLS_KEY, CertFiles, write_atomic
from webhook.certs.issuer import DEFAULT_TRUST_DOMAIN, Issuer
from webhook.certs.keys import DEFAULT_KEY_TYPE, KeyType, load_key_pem
from webhook.certs.leaf import leaf_problem, split_hosts
from webhook.certs.pool import KeyPool
from webhook.certs.rotate import CAState
from webhook.periodic import Periodic

__all__ = ["MeshCertManager"]

log = logging.getLogger(__name__)


class MeshCertManager:
    def __init__(
        self,
        core: Any,  # kubernetes.client.CoreV1Api
        admission: Any,  # kubernetes.client.AdmissionregistrationV1Api
        namespace: str,
        *,
        cert_dir: Path,
        hosts: Sequence[str],
        key_pool: KeyPool,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        secret_name: str = kube.DEFAULT_CA_SECRET,
        key_type: KeyType = DEFAULT_KEY_TYPE,
        ca_validity: timedelta = DEFAULT_CA_VALIDITY,
        serving_validity: timedelta = timedelta(days=30),
        mutating: Sequence[str] = (),
        validating: Sequence[str] = (),
        byo: CA | None = None,
    ) -> None:
        self.core, self.admission, self.namespace = core, admission, namespace
        self.hosts = split_hosts(hosts)
        self._host_list = list(hosts)
        self.key_pool, self.trust_domain = key_pool, trust_domain
        self.secret_name, self.key_type, self.ca_validity = secret_name, key_type, ca_validity
        self.serving_validity = serving_validity
        self.mutating, self.validating, self.byo = tuple(mutating), tuple(validating), byo
        cert_dir = Path(cert_dir)
        cert_dir.mkdir(parents=True, exist_ok=True)
        self.files = CertFiles(ca=cert_dir / CA_CERT, cert=cert_dir / TLS_CERT, key=cert_dir / TLS_KEY)
        self.issuer: Issuer | None = None
        self.state: CAState | None = None
        self._loop = Periodic(self.sync_once, name="mesh-cert-manager", log=log, what="certificate sync")
        self._lock = threading.Lock()
        self.syncs = 0

    @classmethod
    def from_api_client(cls, api_client: Any, namespace: str, **options: Any) -> MeshCertManager:
        """Build from a `kubernetes.client.ApiClient`, so callers need not import `kubernetes`."""
        core, admission = kube.apis_from_client(api_client)
        return cls(core, admission, namespace, **options)

    def _ensure_state(self) -> CAState:
        """The stored CA state, created when absent (from the bring-your-own CA when one was given)."""
        return kube.ensure_ca_state(
            self.core,
            self.namespace,
            name=self.secret_name,
            key_type=self.key_type,
            validity=self.ca_validity,
            byo=self.byo,
        )

    def start_sync(self) -> Issuer:
        """Blocking first sync; returns the Issuer the admission path uses."""
        state = self._ensure_state()
        with self._lock:
            self.issuer = Issuer(state.signing, self.key_pool, self.trust_domain, bundle=state.trust)
            self._apply(state)
        return self.issuer

    def sync_once(self) -> bool:
        """Follow the Secret and renew the serving cert; True when anything changed."""
        found = kube.read_ca_state(self.core, self.namespace, self.secret_name)
        # Deleted: recreate it (or adopt what another replica recreated).
        state = self._ensure_state() if found is None else found[0]
        with self._lock:
            return self._apply(state)

    def _apply(self, state: CAState) -> bool:
        assert self.issuer is not None
        changed = False
        if self.state is None or self.state.to_data() != state.to_data():
            self.issuer.set_ca(state.signing, state.trust)
            log.info("mesh CA %s", state.describe())
            changed = True
        trust = state.trust.pem
        if not self.files.ca.exists() or self.files.ca.read_bytes() != trust:
            write_atomic(self.files.ca, trust)
            changed = True
        problem = self._serving_problem(state)
        if problem is not None:
            log.info("issuing the webhook serving certificate (%s)", problem)
            issued = self.issuer.issue_serving(self._host_list, self.serving_validity)
            write_atomic(self.files.key, issued.key_pem, mode=0o600)
            write_atomic(self.files.cert, issued.cert_pem)
            changed = True
        if changed or self.state is None:
            kube.patch_webhook_ca_bundle(
                self.admission, trust, mutating=self.mutating, validating=self.validating
            )
        self.state = state
        self.syncs += 1
        return changed

    def _serving_problem(self, state: CAState) -> str | None:
        if not self.files.cert.exists() or not self.files.key.exists():
            return "absent"
        try:
            cert = load_cert_pem(self.files.cert.read_bytes(), field=str(self.files.cert))
            key = load_key_pem(self.files.key.read_bytes(), field=str(self.files.key))
        except CertError as exc:
            return str(exc)
        if not public_key_matches(cert, key):
            return "key does not match certificate"
        return leaf_problem(cert, issuers=[state.signing.cert], hosts=self.hosts)

    def serving_cert_pem(self) -> bytes:
        return load_cert_pem(self.files.cert.read_bytes()).public_bytes(Encoding.PEM)

    def start(self, interval: float = 10.0) -> None:
        self._loop.start(interval)

    def stop(self) -> None:
        self._loop.stop(timeout=10)
