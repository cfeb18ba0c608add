"""The Helm chart, rendered by the real helm binary: lint, the server's command line, security
contexts, least-privilege RBAC, the Service, the MeshConfig CRD and object, the sidecar template
copies, and the values schema rejecting bad values with the field's name."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.inject.templates import TEMPLATE_NAMES, load_templates
from webhook.meshconfig import MeshConfigError, Spec, parse_mesh_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fsm-onboard"
DEPLOYMENT = ("Deployment", "fsm-onboard")
# The `render` fixture (conftest.py): `helm template` with --set overrides, keyed by (kind, name).
Render = Callable[..., dict[tuple[str, str], dict[str, Any]]]


def _container(objs: dict) -> dict[str, Any]:
    (container,) = objs[DEPLOYMENT]["spec"]["template"]["spec"]["containers"]
    return container


def _expected_command(mesh: str, ns: str, policy: str, timeout: int) -> list[str]:
    return (
        f"fsm-onboard serve --mesh-name {mesh} --mesh-namespace {ns} --cert-dir /var/run/fsm-onboard/certs "
        f"--service-name fsm-onboard-webhook --failure-policy {policy} --webhook-timeout {timeout} --port 9090 "
        f"--template-dir /etc/fsm-onboard/templates --owner-cluster-role fsm-onboard-{mesh}"
    ).split()


# ---- lint -------------------------------------------------------------------------------------


def test_helm_lint_strict(helm: Any, tmp_path: Path) -> None:
    res = helm.run("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in res.stdout
    overrides = tmp_path / "prod.yaml"
    overrides.write_text(
        yaml.safe_dump(
            {
                "meshName": "prod",
                "replicas": 3,
                "webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 5},
                "meshConfig": {
                    "spec": {"traffic": {"interceptionMode": "ebpf", "outboundPortExclusionList": [6379]}}
                },
            }
        )
    )
    helm.run("lint", "--strict", str(CHART), "-f", str(overrides))


# ---- the server Deployment ----------------------------------------------------------------------


def test_default_command_line(render: Render) -> None:
    c = _container(render())
    assert c["command"] + c["args"] == _expected_command("fsm", "fsm-system", "Fail", 10)
    assert "--kubeconfig" not in c["args"]  # in-cluster
    assert c["image"] == "flomesh/fsm-onboard:0.1.0"


def test_command_line_follows_values_and_namespace(render: Render) -> None:
    objs = render(
        "meshName=prod",
        "webhook.failurePolicy=Ignore",
        "webhook.timeoutSeconds=5",
        "extraArgs={--log-level,info}",
        "image.tag=dev",
        namespace="mesh-prod",
    )
    c = _container(objs)
    assert c["command"] + c["args"] == [
        *_expected_command("prod", "mesh-prod", "Ignore", 5),
        "--log-level",
        "info",
    ]
    assert c["image"] == "flomesh/fsm-onboard:dev"
    assert all(o["metadata"].get("namespace", "mesh-prod") == "mesh-prod" for o in objs.values())


def test_replicas(render: Render) -> None:
    assert render()[DEPLOYMENT]["spec"]["replicas"] == 2
    assert render("replicas=3")[DEPLOYMENT]["spec"]["replicas"] == 3


def test_security_contexts(render: Render) -> None:
    pod = render()[DEPLOYMENT]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = _container(render())["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod.get("hostNetwork") is not True and pod.get("hostPID") is not True


def test_volumes_probes_and_resources(render: Render) -> None:
    objs = render()
    pod = objs[DEPLOYMENT]["spec"]["template"]["spec"]
    c = _container(objs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/var/run/fsm-onboard/certs"]]
    assert volumes[mounts["/etc/fsm-onboard/templates"]]["configMap"]["name"] == "fsm-onboard-templates"
    assert ("ConfigMap", "fsm-onboard-templates") in objs
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"webhook": 9090}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert (get["path"], get["scheme"], ports[get["port"]]) == (path, "HTTPS", 9090)
    assert set(c["resources"]) == {"requests", "limits"}
    assert pod["serviceAccountName"] == "fsm-onboard"


def test_service(render: Render) -> None:
    objs = render()
    svc = objs[("Service", "fsm-onboard-webhook")]
    (port,) = svc["spec"]["ports"]
    target = port["targetPort"]
    c = _container(objs)
    assert port["port"] == 443
    assert {p["name"]: p["containerPort"] for p in c["ports"]}[target] == 9090
    pod_labels = objs[DEPLOYMENT]["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert objs[DEPLOYMENT]["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]


def test_no_webhook_configuration_is_shipped(render: Render) -> None:
    kinds = {kind for kind, _ in render()}
    assert "MutatingWebhookConfiguration" not in kinds  # the server registers and reconciles it
    assert "ValidatingWebhookConfiguration" not in kinds


def test_pod_disruption_budget(render: Render) -> None:
    pdb = render()[("PodDisruptionBudget", "fsm-onboard")]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == render()[DEPLOYMENT]["spec"]["selector"]["matchLabels"]
    # One replica: a PDB of 1 would block every node drain, so none is rendered.
    assert ("PodDisruptionBudget", "fsm-onboard") not in render("replicas=1")
    assert ("PodDisruptionBudget", "fsm-onboard") not in render("podDisruptionBudget.enabled=false")


# ---- RBAC ---------------------------------------------------------------------------------------


def _rules(obj: dict) -> list[tuple[Any, ...]]:
    return sorted(
        (
            tuple(r["apiGroups"]),
            tuple(r["resources"]),
            tuple(sorted(r["verbs"])),
            tuple(sorted(r.get("resourceNames", []))),
        )
        for r in obj["rules"]
    )


def _expected_cluster_rules(mesh: str) -> list[tuple[Any, ...]]:
    webhooks = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")
    return sorted(
        [
            (("",), ("namespaces",), ("get", "list", "patch", "watch"), ()),
            (("",), ("pods",), ("get", "list", "watch"), ()),
            (("",), ("secrets",), ("create", "delete", "get", "list", "patch", "watch"), ()),
            (("",), ("events",), ("create", "patch"), ()),
            (("config.flomesh.io",), ("meshconfigs",), ("get", "list", "watch"), ()),
            (("admissionregistration.k8s.io",), webhooks, ("create", "get", "list", "watch"), ()),
            (
                ("admissionregistration.k8s.io",),
                webhooks,
                ("delete", "patch", "update"),
                (f"fsm-validator-{mesh}", f"fsm-webhook-{mesh}"),
            ),
            (("rbac.authorization.k8s.io",), ("clusterroles",), ("get",), (f"fsm-onboard-{mesh}",)),
            (("apiextensions.k8s.io",), ("customresourcedefinitions",), ("create",), ()),
            (
                ("apiextensions.k8s.io",),
                ("customresourcedefinitions",),
                ("get",),
                ("meshconfigs.config.flomesh.io",),
            ),
        ]
    )


EXPECTED_ROLE_RULES = sorted(
    [
        (("",), ("secrets",), ("create",), ()),
        (("",), ("secrets",), ("get", "patch", "update"), ("fsm-ca-bundle",)),
        (("coordination.k8s.io",), ("leases",), ("create", "get", "update"), ()),
    ]
)


@pytest.mark.parametrize(("mesh", "ns"), [("fsm", "fsm-system"), ("prod", "mesh-prod")])
def test_rbac_is_exactly_least_privilege(render: Render, mesh: str, ns: str) -> None:
    objs = render(f"meshName={mesh}", namespace=ns)
    cluster_role = objs[("ClusterRole", f"fsm-onboard-{mesh}")]
    role = objs[("Role", "fsm-onboard")]
    assert _rules(cluster_role) == _expected_cluster_rules(mesh)
    assert _rules(role) == EXPECTED_ROLE_RULES
    assert role["metadata"]["namespace"] == ns
    for rule in cluster_role["rules"] + role["rules"]:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert not any("*" in item for item in rule.get(key, [])), (key, rule)
        assert "nonResourceURLs" not in rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    subject = {"kind": "ServiceAccount", "name": "fsm-onboard", "namespace": ns}
    crb = objs[("ClusterRoleBinding", f"fsm-onboard-{mesh}")]
    rb = objs[("RoleBinding", "fsm-onboard")]
    assert crb["subjects"] == [subject] and rb["subjects"] == [subject]
    assert crb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": f"fsm-onboard-{mesh}",
    }
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "fsm-onboard"}
    assert ("ServiceAccount", "fsm-onboard") in objs
    # No other RBAC object sneaks in.
    rbac = {k for k in objs if k[0] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")}
    assert len(rbac) == 4


# ---- sidecar templates, CRD, MeshConfig -----------------------------------------------------------


def test_template_copies_are_byte_identical(render: Render) -> None:
    source = sorted(p.name for p in (ROOT / "sidecar_templates").glob("*.yaml"))
    copies = sorted(p.name for p in (CHART / "files" / "sidecar_templates").glob("*.yaml"))
    assert source == copies == sorted(TEMPLATE_NAMES)
    data = render()[("ConfigMap", "fsm-onboard-templates")]["data"]
    assert sorted(data) == source
    for name in source:
        original = (ROOT / "sidecar_templates" / name).read_bytes()
        assert (CHART / "files" / "sidecar_templates" / name).read_bytes() == original, (
            f"charts/fsm-onboard/files/sidecar_templates/{name} differs from sidecar_templates/{name}: "
            "copy it again (cp sidecar_templates/*.yaml charts/fsm-onboard/files/sidecar_templates/)"
        )
        assert data[name].encode() == original, f"ConfigMap key {name} is not the file's bytes"


def test_configmap_templates_load_as_the_builtin_ones(render: Render, tmp_path: Path) -> None:
    for name, text in render()[("ConfigMap", "fsm-onboard-templates")]["data"].items():
        (tmp_path / name).write_text(text)
    from_chart, builtin = load_templates(tmp_path), load_templates(None)
    assert set(from_chart.sources.values()) == {str(tmp_path / n) for n in TEMPLATE_NAMES}
    assert from_chart.version == builtin.version  # same bytes → same sidecar-status version


def test_crd(helm: Any) -> None:
    crd = yaml.safe_load((CHART / "crds" / "meshconfigs.yaml").read_text())
    assert crd == yaml.safe_load((ROOT / "webhook" / "kube" / "manifests" / "meshconfigs.yaml").read_text())
    assert crd["metadata"]["name"] == "meshconfigs.config.flomesh.io"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == (
        "config.flomesh.io",
        "Namespaced",
        "MeshConfig",
    )
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha3", True, True)
    assert (
        version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"]
        is True
    )
    out = helm.template(extra=["--include-crds"]).stdout
    assert any(d and d["kind"] == "CustomResourceDefinition" for d in yaml.safe_load_all(out))


def test_default_mesh_config_is_fsms_defaults(render: Render) -> None:
    mc = render()[("MeshConfig", "fsm-mesh-config")]
    assert mc["apiVersion"] == "config.flomesh.io/v1alpha3"
    assert mc["metadata"]["namespace"] == "fsm-system"
    assert mc["spec"] == dataclasses.asdict(Spec())
    assert parse_mesh_config(mc, strict=True).spec == Spec()


def test_mesh_config_overrides(render: Render) -> None:
    objs = render(
        "meshConfig.spec.traffic.interceptionMode=nftables",
        "meshConfig.spec.traffic.outboundPortExclusionList={6379,5432}",
        "meshConfig.spec.sidecar.logLevel=debug",
        namespace="mesh-a",
    )
    config = parse_mesh_config(objs[("MeshConfig", "fsm-mesh-config")], strict=True)
    assert config.namespace == "mesh-a"
    assert config.traffic.interceptionMode == "nftables"
    assert config.traffic.outboundPortExclusionList == [6379, 5432]
    assert config.sidecar.logLevel == "debug"
    assert ("MeshConfig", "fsm-mesh-config") not in render("meshConfig.create=false")


def test_versions_agree() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert Spec().sidecar.initContainerImage == f"flomesh/fsm-onboard-init:{project['version']}"


# ---- values schema ------------------------------------------------------------------------------

BAD_VALUES = [
    ("replicas=-1", "/replicas"),
    ("replicas=0", "/replicas"),
    ("webhook.failurePolicy=Maybe", "/webhook/failurePolicy"),
    ("webhook.timeoutSeconds=0", "/webhook/timeoutSeconds"),
    ("webhook.timeoutSeconds=31", "/webhook/timeoutSeconds"),
    ("meshName=Not_A_Label", "/meshName"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("podDisruptionBudget.minAvailable=-1", "/podDisruptionBudget/minAvailable"),
    ("unknownTopLevel=1", "unknownTopLevel"),
    ("meshConfig.spec.traffic.interceptionMode=tproxy", "/meshConfig/spec/traffic/interceptionMode"),
    ("meshConfig.spec.traffic.enableEgress=no", "/meshConfig/spec/traffic/enableEgress"),
    (
        "meshConfig.spec.traffic.outboundPortExclusionList={0}",
        "/meshConfig/spec/traffic/outboundPortExclusionList",
    ),
    ("meshConfig.spec.traffic.enableEgresss=true", "enableEgresss"),
    ("meshConfig.spec.sidecar.logLevel=loud", "/meshConfig/spec/sidecar/logLevel"),
    ("meshConfig.spec.sidecar.resources.limits.cpu=lots", "/meshConfig/spec/sidecar/resources/limits/cpu"),
    ("meshConfig.spec.certificate.serviceCertValidityDuration=1day", "/meshConfig/spec/certificate"),
    ("meshConfig.spec.repoServer.port=70000", "/meshConfig/spec/repoServer/port"),
]


@pytest.mark.parametrize(("override", "field"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_schema_rejects_bad_values(helm: Any, override: str, field: str) -> None:
    res = helm.template(override, check=False)
    assert res.returncode != 0, f"--set {override} was accepted"
    assert "schema" in res.stderr and field in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "override",
    [b[0] for b in BAD_VALUES if b[0].startswith("meshConfig.spec.") and "enableEgresss" not in b[0]],
)
def test_schema_and_meshconfig_parser_agree(override: str) -> None:
    """What the schema rejects in meshConfig.spec, webhook/meshconfig.py rejects too (and vice versa
    for the defaults, checked above): one contract, two enforcers."""
    dotted, raw = override.split("=", 1)
    value: Any = yaml.safe_load(raw.replace("{", "[").replace("}", "]"))
    if dotted.endswith("enableEgress"):
        value = "no"  # --set keeps "no" a string
    doc: dict[str, Any] = {}
    node = doc
    parts = dotted.split(".")[1:]  # spec.…
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    with pytest.raises(MeshConfigError):
        parse_mesh_config(doc, strict=True)


def _model_tree(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {
        f.name: _model_tree(hints[f.name]) if dataclasses.is_dataclass(hints[f.name]) else None
        for f in dataclasses.fields(cls)
    }


def _schema_tree(schema: dict[str, Any], model: dict[str, Any] | None) -> dict[str, Any] | None:
    if model is None:
        return None
    assert schema.get("additionalProperties") is False, "MeshConfig objects must reject unknown fields"
    return {k: _schema_tree(v, model.get(k)) for k, v in schema["properties"].items()}


def test_schema_mirrors_the_meshconfig_model() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    spec_schema = schema["properties"]["meshConfig"]["properties"]["spec"]
    model = _model_tree(Spec)
    assert _schema_tree(spec_schema, model) == model, (
        "values.schema.json meshConfig.spec differs from webhook/meshconfig.py"
    )
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["meshConfig"]["spec"] == dataclasses.asdict(Spec())
