"""MeshConfig (``config.flomesh.io/v1alpha3``, object ``fsm-mesh-config``): model, FSM defaults, parsing.

The model is a tree of frozen dataclasses. Parsing walks the dataclass fields, so every field is
checked the same way and every error names its full path (``spec.traffic.enableEgress: expected
boolean, got 'no'``). All errors of one document are reported together. Unknown fields are kept
out of the model but reported as errors only when ``strict`` is set (the API server already prunes
them for the CRD).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from webhook import values

__all__ = [
    "Certificate",
    "MeshConfig",
    "MeshConfigError",
    "Observability",
    "RepoServer",
    "Sidecar",
    "Tracing",
    "Traffic",
    "load_mesh_config",
    "parse_mesh_config",
]

INTERCEPTION_MODES = ("iptables", "nftables", "ebpf")
LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical", "off")
LOCAL_PROXY_MODES = ("Localhost", "PodIP")


class MeshConfigError(ValueError):
    """One or more fields are wrong; ``errors`` holds ``(path, reason)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in errors))


class _SubfieldError(ValueError):
    """A check's error about a part of the value: ``sub`` extends the path."""

    def __init__(self, sub: str, reason: str):
        self.sub = sub
        super().__init__(reason)


def _check(parser: Callable[[Any], Any]) -> dict[str, Any]:
    return {"check": parser}


def _non_negative(raw: Any) -> int:
    if raw < 0:
        raise ValueError(f"expected an integer >= 0, got {raw!r}")
    return int(raw)


def _resources(raw: Any) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for kind, quantities in raw.items():
        if kind not in ("limits", "requests"):
            raise _SubfieldError(str(kind), "unknown field (expected limits or requests)")
        if not isinstance(quantities, dict):
            raise _SubfieldError(kind, f"expected object, got {_describe(quantities)}")
        out[kind] = {}
        for name, quantity in quantities.items():
            try:
                out[kind][str(name)] = values.parse_quantity(quantity)
            except ValueError as exc:
                raise _SubfieldError(f"{kind}.{name}", str(exc)) from None
    return out


def _port(raw: Any) -> int:
    return values.parse_port(raw)


@dataclasses.dataclass(frozen=True)
class Traffic:
    enableEgress: bool = True
    enablePermissiveTrafficPolicyMode: bool = True
    outboundPortExclusionList: list[int] = dataclasses.field(
        default_factory=list, metadata=_check(values.parse_port_list)
    )
    inboundPortExclusionList: list[int] = dataclasses.field(
        default_factory=list, metadata=_check(values.parse_port_list)
    )
    outboundIPRangeExclusionList: list[str] = dataclasses.field(
        default_factory=list, metadata=_check(values.parse_cidr_list)
    )
    outboundIPRangeInclusionList: list[str] = dataclasses.field(
        default_factory=list, metadata=_check(values.parse_cidr_list)
    )
    networkInterfaceExclusionList: list[str] = dataclasses.field(
        default_factory=list, metadata=_check(values.parse_interface_list)
    )
    interceptionMode: str = dataclasses.field(
        default="iptables", metadata=_check(values.one_of(INTERCEPTION_MODES))
    )


@dataclasses.dataclass(frozen=True)
class Certificate:
    serviceCertValidityDuration: str = dataclasses.field(
        default="24h", metadata=_check(values.parse_duration)
    )
    certKeyBitSize: int = 2048


@dataclasses.dataclass(frozen=True)
class Sidecar:
    enablePrivilegedInitContainer: bool = False
    logLevel: str = dataclasses.field(default="error", metadata=_check(values.one_of(LOG_LEVELS)))
    sidecarImage: str = "flomesh/pipy:1.5.14"
    initContainerImage: str = "flomesh/fsm-onboard-init:0.1.0"
    maxDataPlaneConnections: int = dataclasses.field(default=0, metadata=_check(_non_negative))
    configResyncInterval: str = dataclasses.field(default="0s", metadata=_check(values.parse_duration))
    resources: dict[str, Any] = dataclasses.field(default_factory=dict, metadata=_check(_resources))
    holdApplicationUntilProxyStarts: bool = False
    gracefulExitUntilDownstreamEnds: bool = False
    nativeSidecar: bool = False
    localProxyMode: str = dataclasses.field(
        default="Localhost", metadata=_check(values.one_of(LOCAL_PROXY_MODES))
    )


@dataclasses.dataclass(frozen=True)
class Tracing:
    enable: bool = False
    address: str = ""
    port: int = dataclasses.field(default=9411, metadata=_check(_port))
    endpoint: str = "/api/v2/spans"


@dataclasses.dataclass(frozen=True)
class Observability:
    tracing: Tracing = dataclasses.field(default_factory=Tracing)
    enableDebugServer: bool = False


@dataclasses.dataclass(frozen=True)
class RepoServer:
    """Where injected proxies fetch their codebase (the controller). Empty host = derived."""

    ipaddr: str = ""
    port: int = dataclasses.field(default=6060, metadata=_check(_port))
    tls: bool = True


@dataclasses.dataclass(frozen=True)
class Spec:
    traffic: Traffic = dataclasses.field(default_factory=Traffic)
    certificate: Certificate = dataclasses.field(default_factory=Certificate)
    sidecar: Sidecar = dataclasses.field(default_factory=Sidecar)
    observability: Observability = dataclasses.field(default_factory=Observability)
    repoServer: RepoServer = dataclasses.field(default_factory=RepoServer)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    spec: Spec = dataclasses.field(default_factory=Spec)
    name: str = "fsm-mesh-config"
    namespace: str = "fsm-system"
    resourceVersion: str = ""

    @property
    def traffic(self) -> Traffic:
        return self.spec.traffic

    @property
    def sidecar(self) -> Sidecar:
        return self.spec.sidecar


_TYPE_NAMES = {bool: "boolean", int: "integer", str: "string", list: "list", dict: "object"}


def _describe(raw: Any) -> str:
    return json.dumps(raw) if isinstance(raw, str | bool | int | float) or raw is None else type(raw).__name__


def _parse_dataclass(cls: type, raw: Any, path: str, errors: list[tuple[str, str]], strict: bool) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        errors.append((path, f"expected object, got {_describe(raw)}"))
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name not in raw:
            continue
        kwargs[field.name] = _parse_value(
            field, hints[field.name], raw[field.name], f"{path}.{field.name}", errors, strict
        )
    if strict:
        errors.extend((f"{path}.{k}", "unknown field") for k in raw if k not in known)
    try:
        return cls(**{k: v for k, v in kwargs.items() if v is not _INVALID})
    except TypeError as exc:  # pragma: no cover - guarded by the checks above
        errors.append((path, str(exc)))
        return cls()


_INVALID = object()


def _parse_value(
    field: dataclasses.Field[Any], hint: Any, raw: Any, path: str, errors: list[tuple[str, str]], strict: bool
) -> Any:
    if dataclasses.is_dataclass(hint):
        return _parse_dataclass(hint, raw, path, errors, strict)  # type: ignore[arg-type]
    origin = typing.get_origin(hint) or hint
    if isinstance(origin, types.UnionType):  # pragma: no cover - no unions in the model today
        origin = object
    expected = _TYPE_NAMES.get(origin, origin.__name__)
    type_ok = isinstance(raw, origin) and not (origin is int and isinstance(raw, bool))
    if not type_ok:
        errors.append((path, f"expected {expected}, got {_describe(raw)}"))
        return _INVALID
    check = field.metadata.get("check")
    if check is not None:
        try:
            checked = check(raw)
        except _SubfieldError as exc:
            errors.append((f"{path}.{exc.sub}", str(exc)))
            return _INVALID
        except (ValueError, TypeError, AttributeError) as exc:
            errors.append((path, str(exc)))
            return _INVALID
        if origin is list:
            return [str(item) if not isinstance(item, int) else item for item in checked]
        if origin is dict:
            return checked
    return raw


def parse_mesh_config(doc: Mapping[str, Any] | None, *, strict: bool = False) -> MeshConfig:
    """Build a MeshConfig from a whole object (``{"spec": {...}}``) or ``None`` for FSM's defaults."""
    if doc is None:
        return MeshConfig()
    errors: list[tuple[str, str]] = []
    if not isinstance(doc, Mapping):
        raise MeshConfigError([("(root)", f"expected object, got {_describe(doc)}")])
    kind = doc.get("kind")
    if kind is not None and kind != "MeshConfig":
        errors.append(("kind", f"expected MeshConfig, got {_describe(kind)}"))
    spec = _parse_dataclass(Spec, doc.get("spec"), "spec", errors, strict)
    meta = doc.get("metadata") or {}
    if errors:
        raise MeshConfigError(errors)
    if not isinstance(meta, Mapping):
        raise MeshConfigError([("metadata", f"expected object, got {_describe(meta)}")])
    return MeshConfig(
        spec=spec,
        name=str(meta.get("name") or "fsm-mesh-config"),
        namespace=str(meta.get("namespace") or "fsm-system"),
        resourceVersion=str(meta.get("resourceVersion") or ""),
    )


def load_mesh_config(path: str | Path, *, strict: bool = True) -> MeshConfig:
    """Read a MeshConfig from a YAML or JSON file; errors name the file and the field."""
    text = Path(path).read_text()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MeshConfigError([(str(path), f"not valid YAML/JSON: {exc}")]) from None
    return parse_mesh_config(doc, strict=strict)


def mesh_config_to_dict(config: MeshConfig) -> dict[str, Any]:
    """The MeshConfig as a manifest (what the chart and ``dev/`` install)."""
    return {
        "apiVersion": "config.flomesh.io/v1alpha3",
        "kind": "MeshConfig",
        "metadata": {"name": config.name, "namespace": config.namespace},
        "spec": dataclasses.asdict(config.spec),
    }
