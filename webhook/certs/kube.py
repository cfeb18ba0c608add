"""The API-server side of certificates; the only module of webhook/certs that imports `kubernetes`.

- the mesh CA Secret (`fsm-ca-bundle`: `ca.crt`, `private.key`, plus rotation keys): create if
  absent, and on 409 read back what the replica that won stored, so replicas agree on one CA;
- the caBundle of the mutating/validating webhook configurations;
- the proxies' bootstrap Secrets, re-issued during a CA rotation.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from webhook.certs.ca import CA, DEFAULT_CA_VALIDITY, load_cert_pem, utcnow
from webhook.certs.errors import CAConflictError, CertError
from webhook.certs.issuer import (
    BOOTSTRAP_CA_KEY,
    BOOTSTRAP_CERT_KEY,
    Issuer,
    bootstrap_secret_data,
    parse_proxy_cn,
)
from webhook.certs.keys import DEFAULT_KEY_TYPE, KeyType
from webhook.certs.leaf import chains_to, common_name_of
from webhook.certs.rotate import CA_CERT_KEY, CA_KEY_KEY, CAState, abort, begin, finish, switch

__all__ = [
    "BOOTSTRAP_PREFIX",
    "DEFAULT_CA_SECRET",
    "ROTATION_ANNOTATION",
    "SWITCH_ANNOTATION",
    "RotationReport",
    "apis_from_client",
    "apis_from_kubeconfig",
    "create_secret",
    "ensure_ca_secret",
    "ensure_ca_state",
    "list_bootstrap_secrets",
    "load_ca_from_secret",
    "patch_webhook_ca_bundle",
    "read_ca_state",
    "reconcile_bootstrap_secrets",
    "rotate_ca",
    "write_ca_state",
]

log = logging.getLogger(__name__)

DEFAULT_CA_SECRET = "fsm-ca-bundle"
BOOTSTRAP_PREFIX = "sidecar-bootstrap-config-"
ROTATION_ANNOTATION = "flomesh.io/ca-rotation-started"
SWITCH_ANNOTATION = "flomesh.io/ca-rotation-switched"


def apis_from_kubeconfig(
    kubeconfig: str | Path | None = None,
) -> tuple[client.CoreV1Api, client.AdmissionregistrationV1Api]:
    """Clients from a kubeconfig file, else in-cluster config."""
    try:
        if kubeconfig is not None:
            api_client = config.new_client_from_config(config_file=str(kubeconfig))
        else:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
    except (config.ConfigException, OSError) as exc:
        raise CertError(f"kubeconfig: cannot load {kubeconfig or 'in-cluster/default'}: {exc}") from None
    return client.CoreV1Api(api_client), client.AdmissionregistrationV1Api(api_client)


def apis_from_client(api_client: Any) -> tuple[client.CoreV1Api, client.AdmissionregistrationV1Api]:
    """The two APIs webhook.certs needs, over an existing `kubernetes.client.ApiClient`."""
    return client.CoreV1Api(api_client), client.AdmissionregistrationV1Api(api_client)


def _api_error(exc: ApiException, what: str) -> CertError:
    return CertError(f"{what}: API server answered {exc.status} {exc.reason}")


def _decode(data: Mapping[str, str] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


def _encode(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def read_ca_state(
    api: client.CoreV1Api, namespace: str, name: str = DEFAULT_CA_SECRET
) -> tuple[CAState, client.V1Secret] | None:
    """The stored CA state and the Secret (for its resourceVersion), or None if absent."""
    try:
        secret = api.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _api_error(exc, f"Secret {namespace}/{name}") from None
    return CAState.from_data(_decode(secret.data), source=f"Secret {namespace}/{name}"), secret


def ensure_ca_state(
    api: client.CoreV1Api,
    namespace: str,
    *,
    name: str = DEFAULT_CA_SECRET,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    validity: timedelta = DEFAULT_CA_VALIDITY,
    byo: CA | None = None,
) -> CAState:
    """Read the CA Secret; create it (with `byo` or a new CA) when absent; on 409 read it back."""
    found = read_ca_state(api, namespace, name)
    if found is None:
        ca = byo or CA.generate(key_type=key_type, validity=validity)
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name, namespace=namespace, labels={"app.kubernetes.io/managed-by": "fsm-onboard"}
            ),
            type="Opaque",
            data=_encode(CAState(signing=ca).to_data()),
        )
        try:
            api.create_namespaced_secret(namespace, body)
            log.info("stored a new mesh CA in Secret %s/%s (%s)", namespace, name, ca.fingerprint[:16])
            return CAState(signing=ca)
        except ApiException as exc:
            if exc.status != 409:
                raise _api_error(exc, f"Secret {namespace}/{name}") from None
        found = read_ca_state(api, namespace, name)  # another replica won the race: use its CA
        if found is None:
            raise CertError(f"Secret {namespace}/{name}: created by someone else, then deleted; retry")
    state = found[0]
    if byo is not None and byo.fingerprint not in state.trust.fingerprints:
        raise CertError(
            f"Secret {namespace}/{name}: holds a different CA than the one given; "
            "delete the Secret or bring the new CA in with `fsm-onboard certs rotate-ca begin`"
        )
    return state


def ensure_ca_secret(
    api: client.CoreV1Api,
    namespace: str,
    *,
    name: str = DEFAULT_CA_SECRET,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    validity: timedelta = DEFAULT_CA_VALIDITY,
    byo: CA | None = None,
) -> CA:
    """The signing mesh CA, created-if-absent in Secret `name`; every replica gets the same one."""
    return ensure_ca_state(api, namespace, name=name, key_type=key_type, validity=validity, byo=byo).signing


def write_ca_state(
    api: client.CoreV1Api,
    namespace: str,
    state: CAState,
    *,
    secret: client.V1Secret,
    annotations: Mapping[str, str | None] | None = None,
) -> None:
    """Replace the Secret's data if nobody changed it since `secret` was read (resourceVersion)."""
    meta = secret.metadata
    ann = dict(meta.annotations or {})
    for k, v in (annotations or {}).items():
        if v is None:
            ann.pop(k, None)
        else:
            ann[k] = v
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=meta.name,
            namespace=namespace,
            resource_version=meta.resource_version,
            labels=meta.labels,
            annotations=ann or None,
        ),
        type=secret.type or "Opaque",
        data=_encode(state.to_data()),
    )
    try:
        api.replace_namespaced_secret(meta.name, namespace, body)
    except ApiException as exc:
        if exc.status == 409:
            raise CAConflictError(f"Secret {namespace}/{meta.name}: changed by someone else; retry") from None
        raise _api_error(exc, f"Secret {namespace}/{meta.name}") from None


def load_ca_from_secret(api: client.CoreV1Api, namespace: str, name: str) -> CA:
    """Bring-your-own CA from a Secret with `ca.crt`+`private.key` or `tls.crt`+`tls.key`."""
    try:
        data = _decode(api.read_namespaced_secret(name, namespace).data)
    except ApiException as exc:
        raise _api_error(exc, f"Secret {namespace}/{name}") from None
    for cert_key, key_key in ((CA_CERT_KEY, CA_KEY_KEY), ("tls.crt", "tls.key")):
        if data.get(cert_key) and data.get(key_key):
            return CA.from_pem(data[cert_key], data[key_key], source=f"Secret {namespace}/{name}[{cert_key}]")
    raise CertError(f"Secret {namespace}/{name}: needs keys ca.crt+private.key or tls.crt+tls.key")


def patch_webhook_ca_bundle(
    adm: client.AdmissionregistrationV1Api,
    bundle_pem: bytes,
    *,
    mutating: Sequence[str] = (),
    validating: Sequence[str] = (),
) -> int:
    """Set every webhook's clientConfig.caBundle in the named configurations; returns how many
    configurations changed. Read-modify-replace with resourceVersion, retried on conflict."""
    want = base64.b64encode(bundle_pem).decode()
    changed = 0
    kinds: list[tuple[str, Sequence[str], Any, Any]] = [
        ("MutatingWebhookConfiguration", mutating, adm.read_mutating_webhook_configuration,
         adm.replace_mutating_webhook_configuration),
        ("ValidatingWebhookConfiguration", validating, adm.read_validating_webhook_configuration,
         adm.replace_validating_webhook_configuration),
    ]  # fmt: skip
    for kind, names, read, replace in kinds:
        for name in names:
            for _attempt in range(5):
                try:
                    obj = read(name)
                except ApiException as exc:
                    if exc.status == 404:
                        log.debug("%s %s not found: nothing to patch", kind, name)
                        break
                    raise _api_error(exc, f"{kind} {name}") from None
                hooks = obj.webhooks or []
                todo = [h for h in hooks if h.client_config.ca_bundle != want]
                if not todo:
                    break
                for h in todo:
                    h.client_config.ca_bundle = want
                try:
                    replace(name, obj)
                    changed += 1
                    break
                except ApiException as exc:
                    if exc.status != 409:
                        raise _api_error(exc, f"{kind} {name}") from None
            else:
                raise CertError(f"{kind} {name}: kept changing under us; caBundle not updated")
    return changed


def create_secret(
    api: client.CoreV1Api,
    namespace: str,
    name: str,
    data: Mapping[str, bytes],
    *,
    labels: Mapping[str, str] | None = None,
    request_timeout: float | None = None,
) -> None:
    """Create an Opaque Secret (e.g. a bootstrap Secret); `request_timeout` bounds the call.

    Hot path: a plain dict body and no decoding of the answer into models (the client's model
    (de)serialisation costs more CPU than the request itself)."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": _encode(data)}
    try:
        resp = api.create_namespaced_secret(
            namespace, body, _request_timeout=request_timeout, _preload_content=False
        )
        resp.read()  # drain, so the pooled connection is clean for the next request
        resp.release_conn()
    except ApiException as exc:
        raise _api_error(exc, f"Secret {namespace}/{name}") from None


def list_bootstrap_secrets(api: client.CoreV1Api) -> list[client.V1Secret]:
    """Every proxy bootstrap Secret (`sidecar-bootstrap-config-*`) in every namespace."""
    out: list[client.V1Secret] = []
    cont: str | None = None
    while True:
        try:
            page = api.list_secret_for_all_namespaces(limit=500, _continue=cont)
        except ApiException as exc:
            raise _api_error(exc, "Secrets") from None
        out += [s for s in page.items if s.metadata.name.startswith(BOOTSTRAP_PREFIX)]
        cont = page.metadata._continue
        if not cont:
            return out


@dataclass
class RotationReport:
    phase: str
    ca: str
    webhook_configs_patched: int = 0
    bootstrap_trust_updated: int = 0
    bootstrap_reissued: int = 0
    # Secrets whose proxy may hold superseded material in memory: created before the last step, or
    # stored with an old trust bundle or an old-CA leaf (fixed now, but the proxy read it already).
    stale: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"phase: {self.phase}",
            f"CA: {self.ca}",
            f"webhook configurations patched: {self.webhook_configs_patched}",
            f"bootstrap Secrets: trust bundle updated {self.bootstrap_trust_updated}, "
            f"re-issued {self.bootstrap_reissued}",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def reconcile_bootstrap_secrets(
    api: client.CoreV1Api,
    issuer: Issuer,
    state: CAState,
    report: RotationReport,
    *,
    since: str | None = None,
    dry_run: bool = False,
) -> None:
    """Make every bootstrap Secret of this mesh (leaf signed by a CA it trusts) carry the current
    trust bundle, and (once the new CA signs) a leaf signed by the signing CA. Other keys (bootstrap.yaml) are left untouched. `dry_run`
    only counts."""
    trust = state.trust.pem
    cutoff = datetime.fromisoformat(since) if since else None
    for s in list_bootstrap_secrets(api):
        ns, name = s.metadata.namespace, s.metadata.name
        data = _decode(s.data)
        patch: dict[str, bytes] = {}
        created = s.metadata.creation_timestamp
        try:
            leaf = load_cert_pem(
                data.get(BOOTSTRAP_CERT_KEY, b""), field=f"Secret {ns}/{name}[{BOOTSTRAP_CERT_KEY}]"
            )
        except CertError as exc:
            report.notes.append(str(exc))
            continue
        if not any(chains_to(leaf, ca) for ca in state.trust.certs):
            continue  # another mesh's proxy (or one already orphaned by a finished rotation)
        if state.phase != "added" and not chains_to(leaf, state.signing.cert):
            try:
                uid, sa, pod_ns = parse_proxy_cn(common_name_of(leaf), issuer.trust_domain)
            except CertError as exc:
                report.notes.append(f"Secret {ns}/{name}: {exc}")
                continue
            if not dry_run:
                patch.update(bootstrap_secret_data(issuer.issue_bootstrap(uid, sa, pod_ns)))
            else:
                patch[BOOTSTRAP_CERT_KEY] = b""
            report.bootstrap_reissued += 1
        elif data.get(BOOTSTRAP_CA_KEY) != trust:
            patch[BOOTSTRAP_CA_KEY] = trust
            report.bootstrap_trust_updated += 1
        if patch or (cutoff is not None and created is not None and created < cutoff):
            report.stale.append(f"{ns}/{name}")
        if patch and not dry_run:
            try:
                api.patch_namespaced_secret(name, ns, {"data": _encode(patch)})
            except ApiException as exc:
                if exc.status != 404:  # the pod and its Secret went away meanwhile: fine
                    raise _api_error(exc, f"Secret {ns}/{name}") from None


def rotate_ca(
    core: client.CoreV1Api,
    adm: client.AdmissionregistrationV1Api,
    namespace: str,
    step: str,
    *,
    issuer: Issuer,
    secret_name: str = DEFAULT_CA_SECRET,
    new_ca: CA | None = None,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    validity: timedelta = DEFAULT_CA_VALIDITY,
    mutating: Sequence[str] = (),
    validating: Sequence[str] = (),
    force: bool = False,
) -> RotationReport:
    """Drive one rotation step (`status|begin|switch|finish|abort`) and reconcile what follows it:
    the Secret, the webhook configurations' caBundle, the proxies' bootstrap Secrets. Running
    webhook replicas pick the new Secret up on their next sync (MeshCertManager)."""
    found = read_ca_state(core, namespace, secret_name)
    if found is None:
        raise CertError(f"Secret {namespace}/{secret_name}: not found; start the webhook once first")
    state, secret = found
    ann = secret.metadata.annotations or {}
    since = ann.get(SWITCH_ANNOTATION) or ann.get(ROTATION_ANNOTATION)
    annotations: dict[str, str | None] = {}
    now = utcnow().isoformat()
    # the pure step first: a step in the wrong phase fails before anything is touched
    if step == "status":
        new_state = state
    elif step == "begin":
        new_state = begin(state, new_ca or CA.generate(key_type=key_type, validity=validity))
        annotations[ROTATION_ANNOTATION] = now
    elif step == "switch":
        new_state = switch(state)
        annotations[SWITCH_ANNOTATION] = now
    elif step == "finish":
        new_state = finish(state)
        annotations[ROTATION_ANNOTATION] = annotations[SWITCH_ANNOTATION] = None
    elif step == "abort":
        new_state = abort(state)
        annotations[ROTATION_ANNOTATION] = None
    else:
        raise CertError(f"step: unknown rotation step {step!r}; use status, begin, switch, finish or abort")
    if step in ("status", "switch", "finish"):
        # Gate: proxies whose bootstrap Secret predates the previous step, or was written with old
        # material, may hold the old trust bundle (before switch) or an old-CA leaf (before finish).
        pre = RotationReport(phase=state.phase, ca=state.describe())
        reconcile_bootstrap_secrets(core, issuer, state, pre, since=since, dry_run=True)
        if step == "status":
            pre.notes.append(f"{len(pre.stale)} bootstrap Secrets may belong to proxies holding old material")
            return pre
        if pre.stale and not force:
            raise CertError(
                f"rotate-ca {step}: {len(pre.stale)} proxies may still use the old "
                f"{'trust bundle' if step == 'switch' else 'certificate'} (bootstrap Secrets older than the "
                f"previous step or written with old material, e.g. {', '.join(pre.stale[:3])}). Restart those "
                f"workloads (kubectl rollout restart), then run {step} again, or pass --force"
            )
    since = annotations.get(SWITCH_ANNOTATION) or annotations.get(ROTATION_ANNOTATION)
    if new_state is not state:
        write_ca_state(core, namespace, new_state, secret=secret, annotations=annotations)
    report = RotationReport(phase=new_state.phase, ca=new_state.describe())
    report.webhook_configs_patched = patch_webhook_ca_bundle(
        adm, new_state.trust.pem, mutating=mutating, validating=validating
    )
    issuer.set_ca(new_state.signing, new_state.trust)
    reconcile_bootstrap_secrets(core, issuer, new_state, report, since=since)
    if new_state.phase == "added":
        report.notes.append(
            "every peer now trusts both CAs; restart proxies started before this step, then run `switch`"
        )
    elif new_state.phase == "switched":
        report.notes.append("leaves are re-issued by the new CA; once proxies restarted, run `finish`")
    return report
