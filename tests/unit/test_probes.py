"""Probe rewriting for every container (FSM's one-probe-per-type bug is not repeated)."""

from __future__ import annotations

from webhook.inject.probes import rewrite_probes


def test_every_container_keeps_its_own_target():
    containers = [
        {"name": "a", "livenessProbe": {"httpGet": {"path": "/a", "port": 8080}}},
        {"name": "b", "livenessProbe": {"httpGet": {"path": "/b", "port": 9090}}},
    ]
    out = rewrite_probes(containers)
    headers = [c["livenessProbe"]["httpGet"]["httpHeaders"] for c in out.containers]
    assert headers[0] == [
        {"name": "Original-Http-Port", "value": "8080"},
        {"name": "Original-Http-Path", "value": "/a"},
    ]
    assert headers[1] == [
        {"name": "Original-Http-Port", "value": "9090"},
        {"name": "Original-Http-Path", "value": "/b"},
    ]
    assert all(c["livenessProbe"]["httpGet"]["port"] == 15901 for c in out.containers)
    assert [o["container"] for o in out.originals] == ["a", "b"]
    assert out.sidecar_ports == {"liveness-port": 15901}


def test_https_tcp_named_ports_and_settings_kept():
    c = {
        "name": "app",
        "ports": [{"name": "web", "containerPort": 8443}],
        "readinessProbe": {
            "httpGet": {"port": "web", "scheme": "HTTPS"},
            "periodSeconds": 3,
            "timeoutSeconds": 2,
        },
        "startupProbe": {"tcpSocket": {"port": 5432}, "failureThreshold": 30},
    }
    out = rewrite_probes([c])
    ready = out.containers[0]["readinessProbe"]
    assert ready["httpGet"] == {
        "path": "/fsm-healthcheck",
        "port": 15902,
        "scheme": "HTTP",
        "httpHeaders": [{"name": "Original-Tcp-Port", "value": "8443"}],
    }
    assert ready["periodSeconds"] == 3 and ready["timeoutSeconds"] == 2
    start = out.containers[0]["startupProbe"]
    assert "tcpSocket" not in start and start["httpGet"]["port"] == 15904 and start["failureThreshold"] == 30
    assert {
        "container": "app",
        "probe": "startupProbe",
        "port": 5432,
        "scheme": "TCP",
        "timeoutSeconds": 1,
    } in out.originals
    assert c["readinessProbe"]["httpGet"]["port"] == "web", "input must not be mutated"


def test_grpc_exec_and_undeclared_named_ports_stay_and_warn():
    containers = [
        {"name": "g", "livenessProbe": {"grpc": {"port": 9000}}},
        {"name": "e", "livenessProbe": {"exec": {"command": ["true"]}}},
        {"name": "n", "livenessProbe": {"httpGet": {"port": "nope"}}},
    ]
    out = rewrite_probes(containers)
    assert out.containers == containers
    assert out.inbound_port_exclusions == [9000]
    assert len(out.warnings) == 2 and "gRPC" in out.warnings[0] and "'nope'" in out.warnings[1]
