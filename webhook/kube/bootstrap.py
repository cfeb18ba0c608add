"""Bootstrap Secrets in the cluster: created in the admission call, owned by their pod, swept if orphaned.

The pod has no name or UID while it is being admitted, so the Secret is created without an owner;
``SecretOwners`` watches injected pods (label ``fsm-proxy-uuid``) and sets the ownerReference as
soon as the pod is stored, so Kubernetes' garbage collector deletes the Secret with the pod. A
Secret whose pod never came (a later webhook or quota rejected it) is deleted after a grace period.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from webhook import constants as c
from webhook.inject import Rendered
from webhook.inject.bootstrap import SOURCE_LABEL, bootstrap_secret
from webhook.kube.aio import AsyncKube
from webhook.kube.client import Kube, KubeError, path_for
from webhook.kube.informer import Informer
from webhook.periodic import Periodic

__all__ = ["MANAGED_SELECTOR", "SecretOwners", "SecretWriter"]

log = logging.getLogger("fsm_onboard.bootstrap")
# Only Secrets created in admission calls (one per pod) are owned and swept; offline ones are shared.
MANAGED_SELECTOR = f"app.kubernetes.io/managed-by=fsm-onboard,{SOURCE_LABEL}=admission,{c.LABEL_PROXY_UUID}"


class SecretWriter:
    """The admission path's side effect: create the pod's bootstrap Secret within a deadline."""

    def __init__(self, kube: Kube, certs_for: Callable[[Rendered], dict[str, bytes]] | None, deadline: float):
        self.kube, self.certs_for, self.deadline = kube, certs_for, deadline
        self._aio: AsyncKube | None = None  # created on the server's event loop, at first use

    def aio(self) -> AsyncKube:
        """The async client, created on first use on the server's event loop."""
        if self._aio is None:
            self._aio = AsyncKube(self.kube)
        return self._aio

    async def __call__(self, request: dict[str, Any] | Any, rendered: Rendered) -> None:
        namespace = request.get("namespace") or rendered.bootstrap["namespace"]
        certs = self.certs_for(rendered) if self.certs_for else None
        secret = bootstrap_secret(rendered, namespace, certs)
        path = path_for("v1", "secrets", namespace)
        if self._aio is None:
            self._aio = AsyncKube(self.kube)
        try:
            await asyncio.wait_for(
                self._aio.create(path, secret, timeout=self.deadline), timeout=self.deadline
            )
        except TimeoutError:
            raise RuntimeError(
                f"creating Secret {namespace}/{rendered.secret_name} took longer than {self.deadline:.1f}s"
            ) from None
        except KubeError as exc:
            if not exc.conflict:
                raise RuntimeError(f"creating Secret {namespace}/{rendered.secret_name}: {exc}") from None


def _age_seconds(obj: dict[str, Any], now: float) -> float:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return 0.0
    created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return now - created


class SecretOwners:
    """Set Secret → Pod ownerReferences; delete Secrets whose pod never appeared."""

    def __init__(
        self,
        kube: Kube,
        *,
        orphan_grace: float = 120.0,
        sweep_interval: float = 30.0,
        patches_per_s: float = 50.0,
    ):
        self.kube = kube
        self.orphan_grace, self.sweep_interval = orphan_grace, sweep_interval
        self.patch_interval = 1.0 / patches_per_s
        self.owned = 0
        self.swept = 0
        self._done: set[str] = set()
        # Pods waiting for their Secret's ownerReference. Patched by one worker at a bounded rate so
        # a 1000-pod rollout does not add a burst of writes to the API server while it admits pods.
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._queued: set[str] = set()
        self._stop = threading.Event()
        self._sweeper = Periodic(self.sweep, name="secret-sweeper", log=log, what="bootstrap Secret sweep")
        self.pods = Informer(
            kube,
            path_for("v1", "pods"),
            name="injected-pods",
            params={"labelSelector": c.LABEL_PROXY_UUID},
            on_event=self._on_pod,
        )

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._done.discard((pod.get("metadata") or {}).get("uid"))
            return
        meta = pod.get("metadata") or {}
        uid, uuid = meta.get("uid"), (meta.get("labels") or {}).get(c.LABEL_PROXY_UUID)
        if not uid or not uuid or uid in self._done or uid in self._queued:
            return
        self._queued.add(uid)
        self._queue.put(pod)

    def own(self, pod: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        uuid = meta["labels"][c.LABEL_PROXY_UUID]
        ref = {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
        path = path_for("v1", "secrets", meta["namespace"], c.BOOTSTRAP_SECRET_PREFIX + uuid)
        try:
            secret = self.kube.get(path)
            secret_meta = secret.get("metadata") or {}
            # Only a Secret an admission call made for exactly one pod, and only once: an offline
            # Secret is shared by a workload's replicas, and a copied pod must not take over another's.
            if (secret_meta.get("labels") or {}).get(SOURCE_LABEL) != "admission" or secret_meta.get(
                "ownerReferences"
            ):
                self._done.add(meta["uid"])
                return False
            # resourceVersion makes the patch conditional: if anyone changed it meanwhile, retry later.
            patch = {
                "metadata": {"ownerReferences": [ref], "resourceVersion": secret_meta.get("resourceVersion")}
            }
            self.kube.merge_patch(path, patch)
        except KubeError as exc:
            if exc.not_found:  # injected offline, or by FSM: nothing of ours to own
                self._done.add(meta["uid"])
                return False
            log.warning("ownerReference on %s: %s", path, exc)
            return False
        self._done.add(meta["uid"])
        self.owned += 1
        return True

    def sweep(self, now: float | None = None) -> int:
        """Delete managed Secrets with no owner, older than the grace period, whose pod is not stored."""
        if not self.pods.synced.is_set():
            return 0
        now = time.time() if now is None else now
        live = {(p["metadata"].get("labels") or {}).get(c.LABEL_PROXY_UUID) for p in self.pods.items()}
        body = self.kube.get(
            path_for("v1", "secrets"), params={"labelSelector": MANAGED_SELECTOR}, timeout=30
        )
        deleted = 0
        for secret in body.get("items") or []:
            meta = secret["metadata"]
            uuid = (meta.get("labels") or {}).get(c.LABEL_PROXY_UUID)
            if meta.get("ownerReferences") or uuid in live or _age_seconds(secret, now) < self.orphan_grace:
                continue
            try:
                self.kube.delete(path_for("v1", "secrets", meta["namespace"], meta["name"]))
                deleted += 1
                log.info("deleted orphaned bootstrap Secret %s/%s", meta["namespace"], meta["name"])
            except KubeError as exc:
                if not exc.not_found:
                    log.warning("deleting %s/%s: %s", meta["namespace"], meta["name"], exc)
        self.swept += deleted
        return deleted

    def _own_worker(self) -> None:
        while not self._stop.is_set():
            try:
                pod = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self._queued.discard(pod["metadata"]["uid"])
            try:
                self.own(pod)
            except Exception as exc:  # keep the worker alive; the next pod event retries
                log.warning("ownerReference for pod %s: %s", pod["metadata"].get("name"), exc)
            self._stop.wait(self.patch_interval)

    def start(self) -> None:
        self.pods.start()
        threading.Thread(target=self._own_worker, name="secret-owners", daemon=True).start()

        self._sweeper.start(self.sweep_interval)

    def stop(self) -> None:
        self._stop.set()
        self._sweeper.stop()
        self.pods.stop()
