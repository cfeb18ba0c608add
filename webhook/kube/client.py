"""The one place that talks to the Kubernetes API for the webhook: raw JSON in, raw JSON out.

The ``kubernetes`` library provides configuration (kubeconfig, in-cluster service account, client
certs, token refresh) and its connection pool; requests go through ``ApiClient.call_api`` with
``_preload_content=False`` so objects stay plain dicts (no typed models that could drop fields, no
model (de)serialisation cost). Blocking calls: run them in a thread from async code.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

__all__ = ["Kube", "KubeError", "connect"]

JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
MERGE_PATCH = {"Accept": "application/json", "Content-Type": "application/merge-patch+json"}


class KubeError(Exception):
    """An API call failed: ``status`` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, message: str, reason: str = ""):
        self.status, self.reason = status, reason
        super().__init__(message)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


def connect(kubeconfig: str | None = None, *, context: str | None = None) -> Kube:
    """A client from a kubeconfig file, or the in-cluster service account when none is given."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig:
            k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, TypeError) as exc:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "in-cluster config"
        raise KubeError(0, f"{where}: {exc}") from None
    return Kube(k8s.ApiClient(configuration))


def path_for(api_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
    """``/api/v1/namespaces/ns/pods/name`` or ``/apis/group/version/...`` for a resource."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name, safe='')}"
    return base


@dataclasses.dataclass
class Kube:
    api: k8s.ApiClient

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def typed_apis(self) -> tuple[k8s.CoreV1Api, k8s.AdmissionregistrationV1Api]:
        """The typed clients ``webhook.certs.kube`` works with, sharing this connection pool."""
        return k8s.CoreV1Api(self.api), k8s.AdmissionregistrationV1Api(self.api)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
        headers: Mapping[str, str] = JSON_HEADERS,
    ) -> dict[str, Any]:
        resp = self._call(method, path, body, params, timeout, headers, stream=False)
        try:
            data = resp.data
            return orjson.loads(data) if data else {}
        except Exception as exc:  # a connection cut mid-body, or a body that is not JSON
            raise KubeError(
                0, f"{method} {path}: reading the response: {type(exc).__name__}: {exc}"
            ) from None

    def get(self, path: str, **kw: Any) -> dict[str, Any]:
        return self.request("GET", path, **kw)

    def create(self, path: str, body: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
        return self.request("POST", path, body, **kw)

    def merge_patch(self, path: str, patch: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
        return self.request("PATCH", path, patch, headers=MERGE_PATCH, **kw)

    def replace(self, path: str, body: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> dict[str, Any]:
        return self.request("DELETE", path, **kw)

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int = 300,
        params: Mapping[str, Any] | None = None,
    ) -> WatchStream:
        """Open a watch from ``resource_version``; iterate it for ``{"type", "object"}`` events."""
        query = {
            **(params or {}),
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        resp = self._call("GET", path, None, query, timeout_seconds + 10, JSON_HEADERS, stream=True)
        return WatchStream(resp)

    def _call(
        self,
        method: str,
        path: str,
        body: Any,
        params: Mapping[str, Any] | None,
        timeout: float,
        headers: Mapping[str, str],
        *,
        stream: bool,
    ) -> Any:
        try:
            return self.api.call_api(
                path,
                method,
                query_params=list((params or {}).items()),
                header_params=dict(headers),
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
                _return_http_data_only=True,
            )
        except ApiException as exc:
            raise _error(exc) from None
        except Exception as exc:  # urllib3 connection errors, timeouts
            raise KubeError(0, f"{method} {path}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.api.close()


class WatchStream:
    """The events of one watch request; ``close()`` from another thread ends the iteration."""

    def __init__(self, resp: Any):
        self._resp = resp
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        pending = b""
        try:
            for chunk in self._resp.stream(amt=64 * 1024, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)
            if pending.strip():
                yield orjson.loads(pending)
        except Exception as exc:
            if not self.closed:
                raise KubeError(0, f"watch stream broke: {type(exc).__name__}: {exc}") from None
        finally:
            self._resp.release_conn()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):  # closing a dead stream is fine
            self._resp.shutdown() if hasattr(self._resp, "shutdown") else self._resp.close()


def _error(exc: ApiException) -> KubeError:
    message, reason = str(exc.reason or ""), ""
    if exc.body:
        try:
            status = orjson.loads(exc.body)
            message, reason = status.get("message", message), status.get("reason", "")
        except orjson.JSONDecodeError:
            message = exc.body if isinstance(exc.body, str) else message
    return KubeError(int(exc.status or 0), message, reason)
