"""Per-pod injection settings: pod annotation > namespace annotation > MeshConfig, checked up front.

``resolve_settings`` reads every onboarding annotation once and either returns a frozen
``Settings`` or raises ``AnnotationError`` naming each bad annotation and why, which the
admission handler turns into a denial (never a half-injected pod).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from webhook import constants as c
from webhook import values
from webhook.meshconfig import INTERCEPTION_MODES, LOG_LEVELS, MeshConfig

__all__ = ["AnnotationError", "Settings", "resolve_settings"]

OPENSHIFT_UID_RANGE = "openshift.io/sa.scc.uid-range"


class AnnotationError(ValueError):
    """Bad onboarding annotations: ``errors`` holds ``(where, annotation, reason)``."""

    def __init__(self, errors: list[tuple[str, str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{where} annotation {ann}: {reason}" for where, ann, reason in errors))


@dataclasses.dataclass(frozen=True)
class Settings:
    sidecar_image: str
    init_image: str
    log_level: str
    native_sidecar: bool
    hold_application: bool
    graceful_exit: bool
    interception_mode: str
    privileged_init: bool
    local_proxy_mode: str
    resources: dict[str, dict[str, str]]
    metrics: bool
    proxy_uid: int
    outbound_port_exclusions: tuple[int, ...]
    inbound_port_exclusions: tuple[int, ...]
    outbound_ip_range_exclusions: tuple[str, ...]
    outbound_ip_range_inclusions: tuple[str, ...]
    network_interface_exclusions: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def _annotations(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _image(raw: str) -> str:
    value = raw.strip()
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"expected a container image reference, got {raw!r}")
    return value


class _Reader:
    """Looks an annotation up on the pod, then the namespace, collecting every error."""

    def __init__(self, pod: Mapping[str, Any], namespace: Mapping[str, Any]):
        self.pod = _annotations(pod)
        self.ns = _annotations(namespace)
        self.errors: list[tuple[str, str, str]] = []

    def get(self, name: str, parse: Any, default: Any, *, namespace_too: bool = True) -> Any:
        sources = [("pod", self.pod)] + ([("namespace", self.ns)] if namespace_too else [])
        for where, found in sources:
            if name in found:
                try:
                    return parse(found[name])
                except ValueError as exc:
                    self.errors.append((where, name, str(exc)))
                    return default
        return default


def _proxy_uid(namespace: Mapping[str, Any]) -> tuple[int, str]:
    """OpenShift: keep 1500 when the namespace's SCC UID range allows it, else use its first UID."""
    raw = _annotations(namespace).get(OPENSHIFT_UID_RANGE)
    if not raw:
        return c.PROXY_UID, ""
    try:
        if "/" in raw:
            start_s, size_s = raw.split("/", 1)
            start, end = int(start_s), int(start_s) + int(size_s) - 1
        else:
            start_s, end_s = raw.split("-", 1)
            start, end = int(start_s), int(end_s)
    except ValueError:
        return (
            c.PROXY_UID,
            f"namespace annotation {OPENSHIFT_UID_RANGE}={raw!r} is not start/size; proxy UID stays 1500",
        )
    if start <= c.PROXY_UID <= end:
        return c.PROXY_UID, ""
    return start, f"proxy UID {start} (1500 is outside the namespace's OpenShift UID range {raw})"


def resolve_settings(pod: Mapping[str, Any], namespace: Mapping[str, Any], config: MeshConfig) -> Settings:
    """Merge annotations over MeshConfig; raise AnnotationError listing every bad annotation."""
    r = _Reader(pod, namespace)
    sc, tr = config.spec.sidecar, config.spec.traffic
    resources: dict[str, dict[str, str]] = {k: dict(v) for k, v in sc.resources.items()}
    for kind in c.RESOURCE_KINDS:
        for res in c.RESOURCE_NAMES:
            quantity = r.get(f"{c.ANN_RESOURCE_PREFIX}{kind}-{res}", values.parse_quantity, None)
            if quantity is not None:
                resources.setdefault(kind, {})[res] = quantity
    metrics = r.get(c.ANN_METRICS, values.parse_switch, False)
    out_ports = r.get(c.ANN_OUTBOUND_PORT_EXCLUSION, values.parse_port_list, (), namespace_too=False)
    in_ports = r.get(c.ANN_INBOUND_PORT_EXCLUSION, values.parse_port_list, (), namespace_too=False)
    out_ex = r.get(c.ANN_OUTBOUND_IP_EXCLUSION, values.parse_cidr_list, (), namespace_too=False)
    out_in = r.get(c.ANN_OUTBOUND_IP_INCLUSION, values.parse_cidr_list, (), namespace_too=False)
    settings = dict(
        sidecar_image=r.get(c.ANN_SIDECAR_IMAGE, _image, sc.sidecarImage),
        init_image=sc.initContainerImage,
        log_level=r.get(c.ANN_LOG_LEVEL, values.one_of(LOG_LEVELS, strip=True), sc.logLevel),
        native_sidecar=r.get(c.ANN_NATIVE_SIDECAR, values.parse_switch, sc.nativeSidecar),
        hold_application=r.get(c.ANN_HOLD_APP, values.parse_switch, sc.holdApplicationUntilProxyStarts),
        graceful_exit=r.get(c.ANN_GRACEFUL_EXIT, values.parse_switch, sc.gracefulExitUntilDownstreamEnds),
        interception_mode=r.get(
            c.ANN_INTERCEPTION_MODE, values.one_of(INTERCEPTION_MODES, strip=True), tr.interceptionMode
        ),
    )
    if r.errors:
        raise AnnotationError(r.errors)
    uid, uid_warning = _proxy_uid(namespace)
    return Settings(
        **settings,
        privileged_init=sc.enablePrivilegedInitContainer,
        local_proxy_mode=sc.localProxyMode,
        resources=resources,
        metrics=metrics,
        proxy_uid=uid,
        outbound_port_exclusions=_merge(tr.outboundPortExclusionList, out_ports),
        inbound_port_exclusions=_merge(tr.inboundPortExclusionList, in_ports),
        outbound_ip_range_exclusions=_merge(tr.outboundIPRangeExclusionList, (str(n) for n in out_ex)),
        outbound_ip_range_inclusions=_merge(tr.outboundIPRangeInclusionList, (str(n) for n in out_in)),
        network_interface_exclusions=tuple(tr.networkInterfaceExclusionList),
        warnings=(uid_warning,) if uid_warning else (),
    )


def _merge(*parts: Any) -> tuple[Any, ...]:
    """MeshConfig first, then the pod's additions, de-duplicated (FSM merges the same way)."""
    return tuple(dict.fromkeys(item for part in parts for item in part))
