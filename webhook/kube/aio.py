"""An asyncio client for the one API call on the admission hot path (creating bootstrap Secrets).

A thread pool in front of the blocking client queues when the API server asks for hundreds of pods
at once (a ReplicaSet's slow-start batches reach 500); an async client keeps every create in flight
on a pool of keep-alive connections instead. Credentials come from the same kubernetes
``Configuration`` as the blocking client (client certs, bearer token with its refresh hook).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from webhook.kube.client import Kube, KubeError

__all__ = ["AsyncKube"]


class AsyncKube:
    def __init__(self, kube: Kube, *, max_connections: int = 32):
        self.configuration = kube.api.configuration
        cfg = self.configuration
        ctx = (
            ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.verify_ssl
            else ssl._create_unverified_context()
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cfg.cert_file and cfg.key_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        self.client = httpx.AsyncClient(
            base_url=str(cfg.host),
            verify=ctx,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=httpx.Timeout(10.0),
        )

    def _headers(self) -> dict[str, str]:
        cfg = self.configuration
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        token = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        return headers

    async def create(self, path: str, body: Mapping[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
        return await self._send("POST", path, orjson.dumps(body), timeout)

    async def get(self, path: str, *, timeout: float = 10.0) -> dict[str, Any]:
        return await self._send("GET", path, None, timeout)

    async def _send(self, method: str, path: str, content: bytes | None, timeout: float) -> dict[str, Any]:
        try:
            resp = await self.client.request(
                method, path, content=content, headers=self._headers(), timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise KubeError(0, f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 300:
            try:
                status = resp.json()
            except ValueError:
                raise KubeError(resp.status_code, resp.text) from None
            raise KubeError(resp.status_code, status.get("message", resp.text), status.get("reason", ""))
        return orjson.loads(resp.content) if resp.content else {}

    async def aclose(self) -> None:
        await self.client.aclose()
