"""Health-probe rewriting, for every container (FSM keeps only one probe per type per pod).

With traffic redirected into the sidecar, the kubelet's probes would hit the proxy's inbound
listener (and fail on mTLS). Like FSM, probes are pointed at the sidecar's probe ports, which are
excluded from interception; headers tell the sidecar which original target to check, so several
containers with the same probe type each keep their own target. The originals are returned so they
can be written into the bootstrap Secret for the proxy.

- httpGet (HTTP)  → httpGet :15901/2/3 ``/fsm-healthcheck`` + Original-Http-Port/Original-Http-Path
- httpGet (HTTPS) → httpGet (HTTP) on the same ports + Original-Tcp-Port (TLS passes through)
- tcpSocket       → httpGet :15904 ``/fsm-healthcheck`` + Original-Tcp-Port
- grpc and exec probes are left alone; a gRPC probe's port is returned as an inbound exclusion
  so the kubelet still reaches the app directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from webhook import constants as c

__all__ = ["PROBE_PORTS", "ProbeRewrite", "rewrite_probes"]

PROBE_PORTS = {
    "livenessProbe": c.PORT_LIVENESS,
    "readinessProbe": c.PORT_READINESS,
    "startupProbe": c.PORT_STARTUP,
}
_PORT_NAMES = {
    "livenessProbe": "liveness-port",
    "readinessProbe": "readiness-port",
    "startupProbe": "startup-port",
}
_HANDLERS = ("httpGet", "tcpSocket", "grpc", "exec")


@dataclasses.dataclass
class ProbeRewrite:
    containers: list[dict[str, Any]]
    # The original probes, for the proxy: {"container", "probe", "scheme", "port", "path", ...}.
    originals: list[dict[str, Any]]
    # Sidecar container ports to declare, e.g. {"liveness-port": 15901}.
    sidecar_ports: dict[str, int]
    inbound_port_exclusions: list[int]
    warnings: list[str]


def _valid(port: int) -> int | None:
    return port if 1 <= port <= 65535 else None


def _resolve_port(port: Any, container: Mapping[str, Any]) -> int | None:
    """The probe's port as a number, or None when it is not a valid port (the probe is then left
    as is, so the API server's own validation still sees and rejects it)."""
    if isinstance(port, int) and not isinstance(port, bool):
        return _valid(port)
    if isinstance(port, str):
        if port.isascii() and port.isdigit():
            return _valid(int(port))
        declared_ports = container.get("ports")
        for declared in declared_ports if isinstance(declared_ports, list) else []:
            if isinstance(declared, Mapping) and declared.get("name") == port:
                number = declared.get("containerPort")
                if isinstance(number, int) and not isinstance(number, bool):
                    return _valid(number)
    return None


def _rewrite_one(
    kind: str, probe: Mapping[str, Any], container: Mapping[str, Any], out: ProbeRewrite
) -> dict[str, Any] | None:
    """The rewritten probe, or None to keep it as it is."""
    name = container.get("name", "")
    handler = next((h for h in _HANDLERS if h in probe), None)
    if handler is None or handler == "exec":
        return None
    if not isinstance(probe[handler], Mapping):
        out.warnings.append(f"container {name!r}: {kind}.{handler} is not an object; probe left as is")
        return None
    if handler == "grpc":
        port = _resolve_port(probe["grpc"].get("port"), container)
        if port is None:
            out.warnings.append(f"container {name!r}: gRPC {kind} has no valid port; probe left as is")
            return None
        out.inbound_port_exclusions.append(port)
        out.warnings.append(
            f"container {name!r}: gRPC {kind} left as is; port {port} is excluded from inbound interception"
        )
        return None
    target = probe[handler]
    port = _resolve_port(target.get("port"), container)
    if port is None:
        out.warnings.append(
            f"container {name!r}: {kind} port {target.get('port')!r} is not a valid or declared port; probe left as is"
        )
        return None
    original: dict[str, Any] = {"container": name, "probe": kind, "port": port}
    rewritten = {k: v for k, v in probe.items() if k != handler}
    if handler == "httpGet":
        scheme = str(target.get("scheme") or "HTTP").upper()
        path = target.get("path") or "/"
        original.update(scheme=scheme, path=path)
        if target.get("host"):
            original["host"] = target["host"]
        if target.get("httpHeaders"):
            original["httpHeaders"] = target["httpHeaders"]
        if scheme == "HTTPS":
            headers = [{"name": c.HEADER_ORIGINAL_TCP_PORT, "value": str(port)}]
        else:
            headers = [
                {"name": c.HEADER_ORIGINAL_HTTP_PORT, "value": str(port)},
                {"name": c.HEADER_ORIGINAL_HTTP_PATH, "value": path},
            ]
        sidecar_port = PROBE_PORTS[kind]
        out.sidecar_ports[_PORT_NAMES[kind]] = sidecar_port
    else:  # tcpSocket
        original.update(scheme="TCP")
        headers = [{"name": c.HEADER_ORIGINAL_TCP_PORT, "value": str(port)}]
        sidecar_port = c.PORT_TCP_HEALTHCHECK
        out.sidecar_ports["healthcheck"] = sidecar_port
    original["timeoutSeconds"] = probe.get("timeoutSeconds", 1)
    out.originals.append(original)
    rewritten["httpGet"] = {
        "path": c.HEALTHCHECK_PATH,
        "port": sidecar_port,
        "scheme": "HTTP",
        "httpHeaders": headers,
    }
    return rewritten


def rewrite_probes(containers: list[dict[str, Any]]) -> ProbeRewrite:
    """Rewrite the probes of ``containers`` (raw dicts; untouched containers are reused as is)."""
    out = ProbeRewrite([], [], {}, [], [])
    for container in containers:
        changed: dict[str, Any] | None = None
        for kind in PROBE_PORTS:
            probe = container.get(kind)
            if not isinstance(probe, Mapping):
                continue
            rewritten = _rewrite_one(kind, probe, container, out)
            if rewritten is not None:
                if changed is None:
                    changed = dict(container)
                changed[kind] = rewritten
        out.containers.append(container if changed is None else changed)
    return out
