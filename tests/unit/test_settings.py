"""Onboarding annotations: precedence pod > namespace > MeshConfig, merging, and errors naming the annotation."""

from __future__ import annotations

import pytest

from webhook.inject.settings import AnnotationError, resolve_settings
from webhook.meshconfig import parse_mesh_config


def obj(annotations=None, name="demo"):
    return {"metadata": {"name": name, "annotations": annotations or {}}}


DEFAULT = parse_mesh_config(None)


def test_defaults_follow_meshconfig():
    s = resolve_settings(obj(), obj(), DEFAULT)
    assert s.sidecar_image == "flomesh/pipy:1.5.14"
    assert (s.log_level, s.native_sidecar, s.hold_application, s.interception_mode) == (
        "error",
        False,
        False,
        "iptables",
    )
    assert s.proxy_uid == 1500 and s.resources == {} and not s.metrics


@pytest.mark.parametrize(
    ("pod_ann", "ns_ann", "mesh", "expected"),
    [
        ({"flomesh.io/sidecar-image": "p:1"}, {"flomesh.io/sidecar-image": "n:1"}, {}, "p:1"),
        ({}, {"flomesh.io/sidecar-image": "n:1"}, {}, "n:1"),
        ({}, {}, {"sidecar": {"sidecarImage": "m:1"}}, "m:1"),
    ],
)
def test_image_precedence(pod_ann, ns_ann, mesh, expected):
    s = resolve_settings(obj(pod_ann), obj(ns_ann), parse_mesh_config({"spec": mesh}))
    assert s.sidecar_image == expected


@pytest.mark.parametrize(
    ("annotation", "field", "mesh_key"),
    [
        (
            "flomesh.io/hold-application-until-proxy-starts",
            "hold_application",
            "holdApplicationUntilProxyStarts",
        ),
        (
            "flomesh.io/graceful-exit-until-downstream-ends",
            "graceful_exit",
            "gracefulExitUntilDownstreamEnds",
        ),
        ("flomesh.io/native-sidecar", "native_sidecar", "nativeSidecar"),
    ],
)
def test_switch_precedence(annotation, field, mesh_key):
    mesh_on = parse_mesh_config({"spec": {"sidecar": {mesh_key: True}}})
    assert getattr(resolve_settings(obj(), obj(), mesh_on), field) is True
    assert getattr(resolve_settings(obj({annotation: "false"}), obj(), mesh_on), field) is False
    assert getattr(resolve_settings(obj(), obj({annotation: "no"}), mesh_on), field) is False
    assert (
        getattr(resolve_settings(obj({annotation: "enabled"}), obj({annotation: "no"}), DEFAULT), field)
        is True
    )


def test_resources_annotations_override_meshconfig_per_key():
    mesh = parse_mesh_config({"spec": {"sidecar": {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}}})
    pod = obj(
        {
            "flomesh.io/sidecar-resource-limits-memory": "256Mi",
            "flomesh.io/sidecar-resource-requests-ephemeral-storage": "1Gi",
        }
    )
    ns = obj({"flomesh.io/sidecar-resource-requests-cpu": "50m"})
    s = resolve_settings(pod, ns, mesh)
    assert s.resources == {
        "limits": {"cpu": "1", "memory": "256Mi"},
        "requests": {"cpu": "50m", "ephemeral-storage": "1Gi"},
    }


def test_exclusions_merge_with_meshconfig_and_deduplicate():
    mesh = parse_mesh_config(
        {
            "spec": {
                "traffic": {
                    "outboundPortExclusionList": [6379, 80],
                    "outboundIPRangeExclusionList": ["10.0.0.0/8"],
                    "inboundPortExclusionList": [9000],
                    "networkInterfaceExclusionList": ["eth1"],
                }
            }
        }
    )
    pod = obj(
        {
            "flomesh.io/outbound-port-exclusion-list": "80, 3306",
            "flomesh.io/inbound-port-exclusion-list": "9000,9001",
            "flomesh.io/outbound-ip-range-exclusion-list": "10.0.0.0/8, 192.168.0.1, fd00::/8",
            "flomesh.io/outbound-ip-range-inclusion-list": "10.96.0.0/12",
        }
    )
    s = resolve_settings(pod, obj(), mesh)
    assert s.outbound_port_exclusions == (6379, 80, 3306)
    assert s.inbound_port_exclusions == (9000, 9001)
    assert s.outbound_ip_range_exclusions == ("10.0.0.0/8", "192.168.0.1/32", "fd00::/8")
    assert s.outbound_ip_range_inclusions == ("10.96.0.0/12",)
    assert s.network_interface_exclusions == ("eth1",)


@pytest.mark.parametrize(
    ("annotation", "value", "reason"),
    [
        ("flomesh.io/outbound-port-exclusion-list", "80,0", "expected a port 1-65535, got '0'"),
        ("flomesh.io/inbound-port-exclusion-list", "http", "expected a port 1-65535"),
        ("flomesh.io/outbound-ip-range-exclusion-list", "10.0.0.0/33", "expected CIDRs"),
        ("flomesh.io/outbound-ip-range-inclusion-list", "not-an-ip", "expected CIDRs"),
        ("flomesh.io/sidecar-resource-limits-cpu", "lots", "expected a Kubernetes quantity"),
        ("flomesh.io/hold-application-until-proxy-starts", "sometimes", "enabled|yes|true"),
        ("flomesh.io/native-sidecar", "2", "enabled|yes|true"),
        ("flomesh.io/interception-mode", "ipvs", "expected one of iptables|nftables|ebpf"),
        ("flomesh.io/sidecar-log-level", "loud", "expected one of trace"),
        ("flomesh.io/sidecar-image", "bad image", "expected a container image reference"),
        ("flomesh.io/metrics", "on", "enabled|yes|true"),
    ],
)
def test_bad_annotation_names_itself_and_the_reason(annotation, value, reason):
    with pytest.raises(AnnotationError) as err:
        resolve_settings(obj({annotation: value}), obj(), DEFAULT)
    message = str(err.value)
    assert f"pod annotation {annotation}" in message and reason in message


def test_every_bad_annotation_is_reported_at_once():
    with pytest.raises(AnnotationError) as err:
        resolve_settings(
            obj({"flomesh.io/native-sidecar": "x", "flomesh.io/outbound-port-exclusion-list": "99999"}),
            obj(),
            DEFAULT,
        )
    assert len(err.value.errors) == 2


@pytest.mark.parametrize(
    ("uid_range", "uid", "warns"),
    [
        ("1000680000/10000", 1000680000, True),
        ("1000/1000", 1500, False),
        ("garbage", 1500, True),
        (None, 1500, False),
    ],
)
def test_openshift_uid_range(uid_range, uid, warns):
    ns = obj({"openshift.io/sa.scc.uid-range": uid_range} if uid_range else {})
    s = resolve_settings(obj(), ns, DEFAULT)
    assert s.proxy_uid == uid and bool(s.warnings) == warns
