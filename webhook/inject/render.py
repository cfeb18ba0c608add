"""Render the injected pod: templates + settings + probe rewrite, applied to a copy of the raw pod.

Pure: no I/O, no clock, no randomness (the proxy UUID is passed in). The raw pod dict is copied
with orjson and only the fields the injection owns are touched, so fields this code does not know
survive untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from webhook import constants as c
from webhook.inject.probes import rewrite_probes
from webhook.inject.settings import Settings
from webhook.inject.templates import Templates, render

__all__ = ["Context", "Rendered", "init_args", "render_pod"]


@dataclasses.dataclass(frozen=True)
class Context:
    """What the renderer needs beyond the pod: mesh identity and where the repo server is."""

    mesh_name: str = c.DEFAULT_MESH_NAME
    mesh_namespace: str = c.DEFAULT_MESH_NAMESPACE
    trust_domain: str = c.DEFAULT_TRUST_DOMAIN
    repo_host: str = ""
    repo_port: int = c.PORT_REPO
    repo_tls: bool = True

    @property
    def repo(self) -> str:
        return self.repo_host or f"fsm-controller.{self.mesh_namespace}"


@dataclasses.dataclass(frozen=True)
class Rendered:
    pod: dict[str, Any]
    uuid: str
    secret_name: str
    # Data for bootstrap.yaml in the Secret (the certificates are added by the server).
    bootstrap: dict[str, Any]
    warnings: list[str]


def _controller(pod: Mapping[str, Any]) -> tuple[str, str]:
    """POD_CONTROLLER_KIND/NAME as FSM derives them (ReplicaSet foo-abc12 → Deployment foo)."""
    refs = (pod.get("metadata") or {}).get("ownerReferences")
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
            if kind == "ReplicaSet" and "-" in name:
                return "Deployment", name.rsplit("-", 1)[0]
            return kind, name
    return "", ""


def init_args(s: Settings, extra_inbound_exclusions: list[int] | tuple[int, ...] = ()) -> list[str]:
    """The ``fsm-init`` command line for these settings (the flag names initcontainer/ parses)."""
    inbound = tuple(dict.fromkeys((*s.inbound_port_exclusions, *extra_inbound_exclusions)))
    args = [
        f"--mode={s.interception_mode}",
        f"--proxy-uid={s.proxy_uid}",
        f"--inbound-port={c.PORT_INBOUND}",
        f"--outbound-port={c.PORT_OUTBOUND}",
        f"--local-proxy-mode={s.local_proxy_mode}",
    ]
    lists = (
        ("--inbound-port-exclusion-list", inbound),
        ("--outbound-port-exclusion-list", s.outbound_port_exclusions),
        ("--outbound-ip-range-exclusion-list", s.outbound_ip_range_exclusions),
        ("--outbound-ip-range-inclusion-list", s.outbound_ip_range_inclusions),
        ("--network-interface-exclusion-list", s.network_interface_exclusions),
    )
    args += [f"{flag}={','.join(map(str, items))}" for flag, items in lists if items]
    return args


_FIELD_ENV = (
    ("POD_UID", "metadata.uid"),
    ("POD_NAME", "metadata.name"),
    ("POD_NAMESPACE", "metadata.namespace"),
    ("POD_IP", "status.podIP"),
    ("SERVICE_ACCOUNT", "spec.serviceAccountName"),
)
# eBPF mode: what loading and attaching cgroup/sock programs needs (see docs/ebpf.md): BPF +
# NET_ADMIN (SYS_ADMIN for bpffs and kernels < 5.8), NET_RAW for the inbound nat rules; the node's
# cgroup tree (to reach the pod-level cgroup), bpffs for pins, and a per-node header cache.
EBPF_CAPABILITIES = ["BPF", "NET_ADMIN", "NET_RAW", "SYS_ADMIN"]
EBPF_MOUNTS = [
    {"name": "fsm-cgroup", "mountPath": "/sys/fs/cgroup", "readOnly": True},
    {"name": "fsm-bpffs", "mountPath": "/sys/fs/bpf"},
    {"name": "fsm-bpf-headers", "mountPath": "/var/cache/fsm-onboard/bpf-headers"},
]


def _values(
    pod: Mapping[str, Any], namespace: str, s: Settings, ctx: Context, uuid: str, probe_ports: dict[str, int]
) -> dict[str, Any]:
    sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    cn_prefix = f"{uuid}.sidecar.{sa}.{namespace}"
    scheme = "https" if ctx.repo_tls else "http"
    sidecar_args = ["pipy", f"--log-level={s.log_level}", f"--admin-port={c.PIPY_ADMIN_PORT}"]
    if ctx.repo_tls:
        sidecar_args += [
            f"--tls-cert={c.BOOTSTRAP_MOUNT_PATH}/repo_cert.pem",
            f"--tls-key={c.BOOTSTRAP_MOUNT_PATH}/repo_key.pem",
            f"--tls-trusted={c.BOOTSTRAP_MOUNT_PATH}/cacert.pem",
        ]
    sidecar_args.append(f"{scheme}://{ctx.repo}:{ctx.repo_port}/repo/fsm-sidecar/{cn_prefix}/")
    kind, name = _controller(pod)
    env: list[dict[str, Any]] = [{"name": "MESH_NAME", "value": ctx.mesh_name}]
    env += [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": f}}} for n, f in _FIELD_ENV]
    env += [{"name": "POD_CONTROLLER_KIND", "value": kind}, {"name": "POD_CONTROLLER_NAME", "value": name}]
    ports = [
        {"name": "proxy-admin", "containerPort": c.PORT_PROXY_ADMIN},
        {"name": "proxy-inbound", "containerPort": c.PORT_INBOUND},
        {"name": "proxy-metrics", "containerPort": c.PORT_METRICS},
    ] + [{"name": n, "containerPort": p} for n, p in probe_ports.items()]
    ebpf = s.interception_mode == "ebpf"
    return {
        "sidecar_image": s.sidecar_image,
        "sidecar_args": sidecar_args,
        "sidecar_ports": ports,
        "sidecar_env": env,
        "sidecar_resources": s.resources or None,
        "sidecar_restart_policy": "Always" if s.native_sidecar else None,
        "sidecar_lifecycle": s.hold_application or s.graceful_exit,
        "hold_application": s.hold_application,
        "graceful_exit": s.graceful_exit,
        "inbound_port_hex": f"{c.PORT_INBOUND:04X}",
        "proxy_uid": s.proxy_uid,
        "init_image": s.init_image,
        "init_privileged": s.privileged_init,
        "init_capabilities": EBPF_CAPABILITIES if ebpf else ["NET_ADMIN", "NET_RAW"],
        "init_volume_mounts": EBPF_MOUNTS if ebpf else None,
        "ebpf": ebpf,
        "bootstrap_secret": c.BOOTSTRAP_SECRET_PREFIX + uuid,
        "cn_prefix": cn_prefix,
        "service_account": sa,
    }


class InjectionConflict(ValueError):
    """The pod already uses a name the injection adds, or mounts one of its volumes."""


def _check_conflicts(
    app_containers: list[dict[str, Any]],
    app_volumes: list[dict[str, Any]],
    added_containers: list[dict[str, Any]],
    added_volumes: list[dict[str, Any]],
) -> None:
    """Refuse rather than produce a pod the API server rejects ("Duplicate value"), or one whose
    own containers could reach the node paths an eBPF-mode fsm-init mounts."""
    ours = {v["name"] for v in added_volumes}
    problems = []
    for ct in app_containers:
        if ct.get("name") in {a["name"] for a in added_containers}:
            problems.append(f"it already has a container named {ct['name']!r}")
        for mount in ct.get("volumeMounts") or []:
            if isinstance(mount, Mapping) and mount.get("name") in ours:
                problems.append(
                    f"container {ct.get('name')!r} mounts {mount['name']!r}, a volume fsm-onboard adds"
                )
    problems += [
        f"it already has a volume named {v['name']!r}"
        for v in app_volumes
        if isinstance(v, Mapping) and v.get("name") in ours
    ]
    if problems:
        raise InjectionConflict("cannot inject the sidecar: " + "; ".join(problems))


def render_pod(
    pod: Mapping[str, Any],
    namespace: str,
    settings: Settings,
    templates: Templates,
    ctx: Context,
    uuid: str,
) -> Rendered:
    """The injected pod. ``namespace`` is the pod's namespace name (a create may not carry it)."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(pod))
    # `labels:` left empty in YAML arrives as null: treat every such map as empty.
    meta = out["metadata"] = out.get("metadata") or {}
    spec = out["spec"] = out.get("spec") or {}
    probes = rewrite_probes(spec.get("containers") or [])
    values = _values(out, namespace, settings, ctx, uuid, probes.sidecar_ports)
    values["init_args"] = init_args(settings, probes.inbound_port_exclusions)
    sidecar = render(templates.sidecar, values)
    init = render(templates.init, values)
    volumes = render(templates.volumes, values)

    containers = probes.containers
    init_containers = list(spec.get("initContainers") or [])
    _check_conflicts(containers + init_containers, spec.get("volumes") or [], [sidecar, init], volumes)
    if settings.native_sidecar:
        # fsm-init, then the sidecar, then the app's own init containers: those run meshed.
        init_containers = [init, sidecar, *init_containers]
    else:
        # fsm-init last (as FSM): the app's init containers keep plain networking.
        init_containers.append(init)
        containers = [sidecar, *containers] if settings.hold_application else [*containers, sidecar]
    spec["containers"] = containers
    spec["initContainers"] = init_containers
    spec["volumes"] = [*(spec.get("volumes") or []), *volumes]

    labels = meta["labels"] = meta.get("labels") or {}
    labels[c.LABEL_PROXY_UUID] = uuid
    annotations = meta["annotations"] = meta.get("annotations") or {}
    if settings.metrics:
        annotations[c.ANN_PROM_SCRAPE] = "true"
        annotations[c.ANN_PROM_PORT] = str(c.PORT_METRICS)
        annotations[c.ANN_PROM_PATH] = c.PROM_PATH
    status = {
        "version": templates.version,
        "uuid": uuid,
        "containers": [] if settings.native_sidecar else [sidecar["name"]],
        "initContainers": [init["name"], sidecar["name"]] if settings.native_sidecar else [init["name"]],
        "volumes": [v["name"] for v in volumes],
        "interceptionMode": settings.interception_mode,
    }
    annotations[c.ANN_SIDECAR_STATUS] = orjson.dumps(status).decode()
    bootstrap = {
        "node_id": f"{values['cn_prefix']}.{ctx.trust_domain}",
        "mesh_name": ctx.mesh_name,
        "trust_domain": ctx.trust_domain,
        "service_account": values["service_account"],
        "namespace": namespace,
        "repo": {
            "host": ctx.repo,
            "port": ctx.repo_port,
            "tls": ctx.repo_tls,
            "url": values["sidecar_args"][-1],
        },
        "probes": probes.originals,
    }
    warnings = [*settings.warnings, *probes.warnings]
    return Rendered(out, uuid, values["bootstrap_secret"], bootstrap, warnings)
