"""List + watch caches (informers): the webhook reads these, never a per-request GET.

One daemon thread per informer: list (remember the resourceVersion), then watch from it with
bookmarks. A 410 Gone — as an HTTP status or as an ERROR event — means the version was compacted
away: relist. Other errors back off exponentially (0.2 s → 30 s) and resume from the last version.
Callbacks run in the informer thread and must be quick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from webhook.kube.client import Kube, KubeError, WatchStream

__all__ = ["Informer", "object_key"]

log = logging.getLogger("fsm_onboard.informer")

Handler = Callable[[str, dict[str, Any]], None]  # (event type, object)


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class Informer:
    def __init__(
        self,
        kube: Kube,
        path: str,
        *,
        name: str,
        params: Mapping[str, str] | None = None,
        on_event: Handler | None = None,
        watch_timeout: int = 120,
    ):
        self.kube, self.path, self.name = kube, path, name
        self.params = dict(params or {})
        self.on_event = on_event
        self.watch_timeout = watch_timeout
        self.cache: dict[str, dict[str, Any]] = {}
        self.resource_version = ""
        self.synced = threading.Event()
        self.relists = 0
        self.errors = 0
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- reading ---------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        return self.cache.get(key)

    def items(self) -> list[dict[str, Any]]:
        return list(self.cache.values())

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._close_stream()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_synced(self, timeout: float) -> bool:
        return self.synced.wait(timeout)

    def restart_watch(self, resource_version: str | None = None) -> None:
        """End the current watch; the next one starts from ``resource_version`` (tests force a 410)."""
        with self._lock:
            if resource_version is not None:
                self.resource_version = resource_version
        self._close_stream()

    def _close_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.close()

    # --- the loop --------------------------------------------------------------------------
    def _list(self) -> None:
        body = self.kube.get(self.path, params=self.params, timeout=30)
        fresh = {object_key(o): o for o in body.get("items") or []}
        old = self.cache
        self.cache = fresh
        with self._lock:
            self.resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if self.on_event is not None:
            for key, obj in fresh.items():
                if old.get(key) != obj:
                    self.on_event("ADDED" if key not in old else "MODIFIED", obj)
            for key, obj in old.items():
                if key not in fresh:
                    self.on_event("DELETED", obj)
        self.synced.set()

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            with self._lock:
                self.resource_version = str(rv)
        if kind == "BOOKMARK":
            return
        key = object_key(obj)
        if kind == "DELETED":
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        if self.on_event is not None:
            try:
                self.on_event(kind, obj)
            except Exception:
                log.exception("informer %s: handler failed on %s %s", self.name, kind, key)

    def _run(self) -> None:
        backoff = 0.2
        need_list = True
        failures = 0
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                    failures = 0
                with self._lock:
                    rv = self.resource_version
                self._stream = self.kube.watch(
                    self.path, resource_version=rv, timeout_seconds=self.watch_timeout, params=self.params
                )
                for event in self._stream:
                    kind, obj = event.get("type", ""), event.get("object") or {}
                    if kind == "ERROR":
                        code = int(obj.get("code") or 0)
                        raise KubeError(
                            code, str(obj.get("message") or "watch error"), str(obj.get("reason") or "")
                        )
                    self._apply(kind, obj)
                    backoff, failures = 0.2, 0
            except Exception as exc:  # nothing may kill the informer thread
                if self._stop.is_set():
                    return
                err = exc if isinstance(exc, KubeError) else KubeError(0, f"{type(exc).__name__}: {exc}")
                if err.gone:
                    self.relists += 1
                    log.info("informer %s: %s; relisting", self.name, err)
                    need_list = True
                    continue
                self.errors += 1
                failures += 1
                if failures >= 3 and self.synced.is_set():
                    # The cache may be going stale: say so on /readyz until a relist succeeds.
                    log.warning("informer %s: %d failures in a row; marking not synced", self.name, failures)
                    self.synced.clear()
                    need_list = True
                log.warning("informer %s: %s; retrying in %.1fs", self.name, err, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                if self.errors % 5 == 0:
                    need_list = True
            finally:
                self._stream = None
            if not self._stop.is_set():
                time.sleep(0)  # the server ended the watch (timeout): resume from the last version
