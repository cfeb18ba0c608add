"""Cluster mode of ``fsm-onboard serve``: wire the informers, certificates, registrar and Secret writer
around the same Mutator the standalone server uses.

Start-up order matters: CRD and mesh namespace exist → CA Secret agreed and serving cert written →
informers listed → webhook configuration registered (it points the API server at us, so we must be
able to answer first) → HTTPS.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from webhook import constants as c
from webhook.certs.ca import CA, DEFAULT_CA_VALIDITY
from webhook.certs.issuer import bootstrap_secret_data
from webhook.certs.keys import DEFAULT_KEY_TYPE, KeyType
from webhook.certs.manager import MeshCertManager
from webhook.certs.pool import KeyPool
from webhook.certs.service import ServiceCertCache
from webhook.controller.servicecerts import ServiceCertPusher, service_data
from webhook.inject import Context, Rendered, Templates
from webhook.kube.bootstrap import SecretOwners, SecretWriter
from webhook.kube.client import Kube, KubeError, path_for
from webhook.kube.events import EventRecorder
from webhook.kube.informer import Informer
from webhook.kube.webhookconfig import Registrar, WebhookSettings, validator_config_name, webhook_config_name
from webhook.meshconfig import MeshConfig, MeshConfigError, parse_mesh_config
from webhook.mutate import Mutator
from webhook.values import parse_duration

__all__ = ["ClusterServer", "MeshConfigSource", "ensure_crd", "ensure_namespace"]

log = logging.getLogger("fsm_onboard.cluster")
CRD_FILE = Path(__file__).parent / "kube" / "manifests" / "meshconfigs.yaml"
MESHCONFIG_API = "config.flomesh.io/v1alpha3"


def ensure_crd(kube: Kube, timeout: float = 30.0) -> None:
    """Install the MeshConfig CRD when absent and wait until it is Established."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    path = path_for("apiextensions.k8s.io/v1", "customresourcedefinitions")
    try:
        kube.create(path, crd)
        log.info("installed CRD %s", crd["metadata"]["name"])
    except KubeError as exc:
        if not exc.conflict:
            raise
    deadline = time.monotonic() + timeout
    while True:
        got = kube.get(f"{path}/{crd['metadata']['name']}")
        conditions = (got.get("status") or {}).get("conditions") or []
        if any(cond.get("type") == "Established" and cond.get("status") == "True" for cond in conditions):
            return
        if time.monotonic() > deadline:
            raise KubeError(0, f"CRD {crd['metadata']['name']} not Established after {timeout:.0f}s")
        time.sleep(0.1)


def ensure_namespace(kube: Kube, name: str) -> None:
    """Create the mesh namespace for a local run; in a cluster it exists and we may not create it."""
    try:
        kube.get(path_for("v1", "namespaces", name=name))
        return
    except KubeError as exc:
        if not exc.not_found:
            raise
    try:
        kube.create(
            path_for("v1", "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        log.info("created namespace %s", name)
    except KubeError as exc:
        if not exc.conflict:
            raise


class MeshConfigSource:
    """The live MeshConfig: FSM's defaults while the object is absent; a bad edit keeps the last good one."""

    def __init__(self, kube: Kube, namespace: str, name: str = c.MESH_CONFIG_NAME):
        self.current = MeshConfig()
        self.last_error = ""
        self.informer = Informer(
            kube,
            path_for(MESHCONFIG_API, "meshconfigs", namespace),
            name="meshconfig",
            params={"fieldSelector": f"metadata.name={name}"},
            on_event=self._on_event,
        )

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.current, self.last_error = MeshConfig(), ""
            log.info("MeshConfig deleted: using the built-in defaults")
            return
        try:
            self.current = parse_mesh_config(obj)
            self.last_error = ""
            log.info("MeshConfig %s applied", self.current.resourceVersion)
        except MeshConfigError as exc:
            self.last_error = str(exc)
            log.warning("MeshConfig rejected, keeping the previous one: %s", exc)

    def get(self) -> MeshConfig:
        return self.current


@dataclasses.dataclass
class ClusterOptions:
    mesh_name: str
    mesh_namespace: str
    cert_dir: Path
    cert_hosts: Sequence[str]
    webhook: WebhookSettings
    trust_domain: str = c.DEFAULT_TRUST_DOMAIN
    secret_deadline: float = 0.0  # 0: the webhook timeout less 2 s
    key_pool_size: int = 64
    service_cert_interval: float = 30.0  # how often service certs are checked for renewal
    byo_ca: CA | None = None  # bring-your-own mesh CA (--ca-cert/--ca-key); else one is generated
    key_type: KeyType = DEFAULT_KEY_TYPE  # of the generated CA, the serving cert and proxy certs
    ca_validity: timedelta = DEFAULT_CA_VALIDITY


class ClusterServer:
    """Everything cluster mode runs beside the HTTPS server; ``start`` blocks until it can serve."""

    def __init__(self, kube: Kube, options: ClusterOptions, templates: Templates, ctx: Context):
        self.kube, self.options = kube, options
        o = options
        svc = o.webhook.service_name
        hosts = [
            f"{svc}.{o.mesh_namespace}.svc",
            f"{svc}.{o.mesh_namespace}.svc.cluster.local",
            svc,
            "localhost",
            "127.0.0.1",
            *o.cert_hosts,
        ]
        self.key_pool = KeyPool(size=o.key_pool_size, key_type=o.key_type)
        core, admission = kube.typed_apis()
        self.certs = MeshCertManager(
            core,
            admission,
            o.mesh_namespace,
            cert_dir=o.cert_dir,
            hosts=list(dict.fromkeys(hosts)),
            key_pool=self.key_pool,
            trust_domain=o.trust_domain,
            byo=o.byo_ca,
            key_type=o.key_type,
            ca_validity=o.ca_validity,
            mutating=[webhook_config_name(o.mesh_name)],
            validating=[validator_config_name(o.mesh_name)],
        )
        self.namespaces = Informer(kube, path_for("v1", "namespaces"), name="namespaces")
        self.mesh_config = MeshConfigSource(kube, o.mesh_namespace)
        self.owners = SecretOwners(kube)
        ca_bundle = lambda: self.certs.files.ca.read_bytes()  # noqa: E731 - the trust bundle the manager keeps
        self.registrars = [
            Registrar.mutating(kube, o.webhook, ca_bundle),
            Registrar.validating(kube, o.webhook, ca_bundle),
        ]
        self.events = EventRecorder(kube)
        # Leave ~2 s of the webhook timeout for everything else in the call.
        deadline = o.secret_deadline or max(1.0, o.webhook.timeout_seconds - 2.0)
        self.writer = SecretWriter(kube, self._certs_for, deadline)
        self.mutator = Mutator(
            templates,
            ctx,
            self._namespace,
            self.mesh_config.get,
            bootstrap_writer=self.writer,
            on_result=self.events.record,
            namespace_refresh=self._refresh_namespace,
        )
        self.service_certs: ServiceCertPusher | None = None
        self._started = threading.Event()

    def _namespace(self, name: str) -> dict[str, Any] | None:
        return self.namespaces.get(name)

    async def _refresh_namespace(
        self, name: str, cached: Mapping[str, Any] | None
    ) -> Mapping[str, Any] | None:
        """The API server only calls us for namespaces its selector says are monitored, so a cached
        copy that disagrees is stale (labelled a moment ago): read it live, without blocking the loop."""
        labels = ((cached or {}).get("metadata") or {}).get("labels") or {}
        if cached is not None and labels.get(c.LABEL_MONITORED_BY) == self.options.mesh_name:
            return cached
        try:
            return await self.writer.aio().get(path_for("v1", "namespaces", name=name), timeout=2.0)
        except KubeError as exc:
            log.warning("namespace %s: cache miss and live read failed: %s", name, exc)
            return cached

    def _certs_for(self, rendered: Rendered) -> dict[str, bytes]:
        issuer, pusher = self.certs.issuer, self.service_certs
        assert issuer is not None and pusher is not None, "certificates are synced before serving"
        b = rendered.bootstrap
        data = bootstrap_secret_data(
            issuer.issue_bootstrap(rendered.uuid, b["service_account"], b["namespace"])
        )
        data.update(service_data(pusher.current(b["service_account"], b["namespace"])))
        return data

    def _service_validity(self) -> timedelta:
        raw = self.mesh_config.get().spec.certificate.serviceCertValidityDuration
        return timedelta(seconds=parse_duration(raw))

    def ready(self) -> bool:
        return (
            self._started.is_set()
            and self.namespaces.synced.is_set()
            and self.mesh_config.informer.synced.is_set()
        )

    @property
    def tls_files(self) -> tuple[Path, Path]:
        return self.certs.files.cert, self.certs.files.key

    def start(self, sync_timeout: float = 60.0) -> None:
        o = self.options
        ensure_namespace(self.kube, o.mesh_namespace)
        ensure_crd(self.kube)
        self.key_pool.start()
        issuer = self.certs.start_sync()
        self.service_certs = ServiceCertPusher(
            self.kube, ServiceCertCache(issuer, self._service_validity()), self._service_validity
        )
        self.certs.start(interval=10.0)
        for informer in (self.namespaces, self.mesh_config.informer):
            informer.start()
        for informer in (self.namespaces, self.mesh_config.informer):
            if not informer.wait_synced(sync_timeout):
                raise KubeError(0, f"informer {informer.name} did not sync in {sync_timeout:.0f}s")
        self.owners.start()
        self.service_certs.start(o.service_cert_interval)
        self._started.set()

    def register(self) -> None:
        """Point the API server at us (mutating and validating); call once the HTTPS server listens."""
        for registrar in self.registrars:
            registrar.start()

    def stop(self) -> None:
        for registrar in self.registrars:
            registrar.stop()
        self.owners.stop()
        if self.service_certs is not None:
            self.service_certs.stop()
        self.namespaces.stop()
        self.mesh_config.informer.stop()
        self.certs.stop()
        self.key_pool.stop()
