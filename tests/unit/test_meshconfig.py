"""MeshConfig parsing: FSM's defaults, and errors that name the field path and the reason."""

from __future__ import annotations

import pytest

from webhook.meshconfig import MeshConfigError, load_mesh_config, parse_mesh_config


def test_defaults_are_fsms():
    m = parse_mesh_config(None)
    assert m.spec.sidecar.sidecarImage == "flomesh/pipy:1.5.14"
    assert m.spec.sidecar.logLevel == "error"
    assert m.spec.certificate.serviceCertValidityDuration == "24h"
    assert m.spec.traffic.enableEgress is True and m.spec.traffic.enablePermissiveTrafficPolicyMode is True
    assert m.spec.sidecar.enablePrivilegedInitContainer is False
    assert m.spec.traffic.interceptionMode == "iptables"


def test_full_document():
    m = parse_mesh_config(
        {
            "apiVersion": "config.flomesh.io/v1alpha3",
            "kind": "MeshConfig",
            "metadata": {"name": "fsm-mesh-config", "namespace": "mesh", "resourceVersion": "42"},
            "spec": {
                "traffic": {
                    "enableEgress": False,
                    "outboundPortExclusionList": [6379],
                    "inboundPortExclusionList": [9000],
                    "outboundIPRangeExclusionList": ["10.0.0.0/8"],
                    "networkInterfaceExclusionList": ["eth1"],
                },
                "certificate": {"serviceCertValidityDuration": "1h30m"},
                "sidecar": {
                    "enablePrivilegedInitContainer": True,
                    "logLevel": "debug",
                    "sidecarImage": "x:1",
                    "maxDataPlaneConnections": 100,
                    "configResyncInterval": "90s",
                    "resources": {"limits": {"cpu": "500m"}},
                },
                "observability": {
                    "tracing": {
                        "enable": True,
                        "address": "jaeger",
                        "port": 9411,
                        "endpoint": "/api/v2/spans",
                    },
                    "enableDebugServer": True,
                },
            },
        }
    )
    assert m.namespace == "mesh" and m.resourceVersion == "42"
    assert m.spec.traffic.outboundPortExclusionList == [6379]
    assert m.spec.sidecar.resources == {"limits": {"cpu": "500m"}}
    assert m.spec.observability.tracing.address == "jaeger"


@pytest.mark.parametrize(
    ("spec", "path", "reason"),
    [
        ({"traffic": {"enableEgress": "no"}}, "spec.traffic.enableEgress", 'expected boolean, got "no"'),
        (
            {"traffic": {"enablePermissiveTrafficPolicyMode": 1}},
            "spec.traffic.enablePermissiveTrafficPolicyMode",
            "expected boolean, got 1",
        ),
        (
            {"traffic": {"outboundPortExclusionList": [80, 70000]}},
            "spec.traffic.outboundPortExclusionList",
            "expected a port 1-65535, got 70000",
        ),
        (
            {"traffic": {"outboundPortExclusionList": "80"}},
            "spec.traffic.outboundPortExclusionList",
            'expected list, got "80"',
        ),
        (
            {"traffic": {"outboundIPRangeExclusionList": ["10.0.0/8x"]}},
            "spec.traffic.outboundIPRangeExclusionList",
            "expected CIDRs",
        ),
        (
            {"traffic": {"interceptionMode": "ipvs"}},
            "spec.traffic.interceptionMode",
            "expected one of iptables|nftables|ebpf",
        ),
        (
            {"certificate": {"serviceCertValidityDuration": "1d"}},
            "spec.certificate.serviceCertValidityDuration",
            "expected a duration",
        ),
        ({"sidecar": {"logLevel": "verbose"}}, "spec.sidecar.logLevel", "expected one of"),
        ({"sidecar": {"sidecarImage": 5}}, "spec.sidecar.sidecarImage", "expected string, got 5"),
        (
            {"sidecar": {"maxDataPlaneConnections": -1}},
            "spec.sidecar.maxDataPlaneConnections",
            "expected an integer >= 0",
        ),
        (
            {"sidecar": {"maxDataPlaneConnections": True}},
            "spec.sidecar.maxDataPlaneConnections",
            "expected integer, got true",
        ),
        (
            {"sidecar": {"resources": {"limits": {"memory": "lots"}}}},
            "spec.sidecar.resources.limits.memory",
            "expected a Kubernetes quantity",
        ),
        ({"sidecar": {"resources": {"max": {}}}}, "spec.sidecar.resources.max", "unknown field"),
        ({"observability": {"tracing": {"port": 0}}}, "spec.observability.tracing.port", "expected a port"),
        ({"observability": {"tracing": "on"}}, "spec.observability.tracing", 'expected object, got "on"'),
        ({"sidecar": []}, "spec.sidecar", "expected object, got list"),
    ],
)
def test_errors_name_the_field(spec, path, reason):
    with pytest.raises(MeshConfigError) as err:
        parse_mesh_config({"spec": spec})
    assert any(p == path and reason in r for p, r in err.value.errors), err.value.errors
    assert f"{path}: " in str(err.value)


def test_all_errors_reported_together():
    with pytest.raises(MeshConfigError) as err:
        parse_mesh_config({"spec": {"traffic": {"enableEgress": "x"}, "sidecar": {"logLevel": "y"}}})
    assert len(err.value.errors) == 2


def test_strict_rejects_unknown_fields_and_wrong_kind(tmp_path):
    f = tmp_path / "mc.yaml"
    f.write_text("kind: Secret\nspec:\n  sidecar:\n    logLevl: debug\n")
    with pytest.raises(MeshConfigError) as err:
        load_mesh_config(f)
    assert ("spec.sidecar.logLevl", "unknown field") in err.value.errors
    assert any(p == "kind" for p, _ in err.value.errors)


def test_file_not_yaml(tmp_path):
    f = tmp_path / "mc.yaml"
    f.write_text("spec: [\n")
    with pytest.raises(MeshConfigError, match="not valid YAML"):
        load_mesh_config(f)
