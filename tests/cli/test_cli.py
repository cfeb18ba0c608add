"""The `fsm-onboard` CLI through a real subprocess: inject, explain and their errors."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from helpers import BIN, ROOT

DEMO = ROOT / "demo" / "bookstore.yaml"


def run(*args, stdin=None):
    return subprocess.run(
        [str(BIN / "fsm-onboard"), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_inject_deployment_from_file():
    r = run("inject", "-f", str(DEMO))
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all(r.stdout))
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 2
    for d in deployments:
        spec = d["spec"]["template"]["spec"]
        assert [c["name"] for c in spec["containers"]][-1] == "sidecar"
        assert [c["name"] for c in spec["initContainers"]] == ["fsm-init"]
        uuid = d["spec"]["template"]["metadata"]["labels"]["fsm-proxy-uuid"]
        secret = next(
            s
            for s in docs
            if s["kind"] == "Secret" and s["metadata"]["name"] == f"sidecar-bootstrap-config-{uuid}"
        )
        assert "bootstrap.yaml" in secret["stringData"]
    # Other kinds pass through unchanged.
    assert [d for d in docs if d["kind"] == "Service"] == [
        d for d in yaml.safe_load_all(DEMO.read_text()) if d["kind"] == "Service"
    ]


WORKLOADS = """
apiVersion: v1
kind: List
items:
  - {apiVersion: apps/v1, kind: StatefulSet, metadata: {name: s}, spec: {template: {spec: {containers: [{name: a, image: a}]}}}}
  - {apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {template: {spec: {containers: [{name: a, image: a}]}}}}
  - {apiVersion: apps/v1, kind: ReplicaSet, metadata: {name: r}, spec: {template: {spec: {containers: [{name: a, image: a}]}}}}
  - {apiVersion: v1, kind: ReplicationController, metadata: {name: rc}, spec: {template: {spec: {containers: [{name: a, image: a}]}}}}
  - {apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {template: {spec: {containers: [{name: a, image: a}]}}}}
  - {apiVersion: batch/v1, kind: CronJob, metadata: {name: c}, spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: a, image: a}]}}}}}}
  - {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, image: a}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: out, annotations: {flomesh.io/sidecar-injection: disabled}}, spec: {containers: [{name: a, image: a}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: host}, spec: {hostNetwork: true, containers: [{name: a, image: a}]}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}, data: {k: v}}
"""


def _spec(obj):
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def test_inject_every_workload_kind_from_stdin_list():
    r = run("inject", "-f", "-", "--no-secrets", stdin=WORKLOADS)
    assert r.returncode == 0, r.stderr
    items = yaml.safe_load(r.stdout)["items"]
    injected = {
        o["metadata"]["name"]: any(c["name"] == "sidecar" for c in _spec(o)["containers"])
        for o in items
        if o["kind"] != "ConfigMap"
    }
    assert injected == {
        "s": True,
        "d": True,
        "r": True,
        "rc": True,
        "j": True,
        "c": True,
        "p": True,
        "out": False,
        "host": False,
    }
    assert items[-1] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm"},
        "data": {"k": "v"},
    }
    assert "not injected" in r.stderr and "host network" in r.stderr


def test_inject_with_mesh_config(tmp_path):
    mc = tmp_path / "mc.yaml"
    mc.write_text("spec:\n  sidecar:\n    sidecarImage: my/pipy:9\n    nativeSidecar: true\n")
    r = run("inject", "-f", str(DEMO), "--mesh-config", str(mc), "--no-secrets")
    assert r.returncode == 0, r.stderr
    dep = next(d for d in yaml.safe_load_all(r.stdout) if d["kind"] == "Deployment")
    inits = dep["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["fsm-init", "sidecar"] and inits[1]["image"] == "my/pipy:9"
    assert inits[1]["restartPolicy"] == "Always"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("inject", "-f", "-"), "a: 1\n---\nb: [\n", "document 2: not valid YAML"),
        (("inject", "-f", "-"), "- just\n- a list\n", "document 1: expected a Kubernetes object"),
        (("inject", "-f", "/nonexistent.yaml"), None, "-f: /nonexistent.yaml: no such file"),
        (
            ("inject", "-f", "-", "--mesh-config", "/nonexistent"),
            "",
            "--mesh-config: /nonexistent: no such file",
        ),
        (
            ("inject", "-f", "-"),
            "kind: Pod\nmetadata: {name: p, annotations: {flomesh.io/native-sidecar: maybe}}\nspec: {containers: []}\n",
            "document 1: Pod 'p': pod annotation flomesh.io/native-sidecar",
        ),
        (
            ("inject", "-f", "-"),
            "kind: Deployment\nmetadata: {name: d}\nspec: {}\n",
            "document 1: Deployment 'd' has no spec.template",
        ),
        (
            ("explain", "-f", "-", "--namespace-file", "/nonexistent"),
            "",
            "--namespace-file: /nonexistent: no such file",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message(args, stdin, message, tmp_path):
    r = run(*args, stdin=stdin)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bad_mesh_config_names_the_field(tmp_path):
    mc = tmp_path / "mc.yaml"
    mc.write_text('spec:\n  traffic:\n    enableEgress: "no"\n')
    r = run("inject", "-f", str(DEMO), "--mesh-config", str(mc))
    assert r.returncode == 2 and 'spec.traffic.enableEgress: expected boolean, got "no"' in r.stderr


def test_explain_says_which_rule_decided(tmp_path):
    ns = tmp_path / "ns.yaml"
    ns.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {flomesh.io/monitored-by: fsm}\n"
    )
    r = run("explain", "-f", "-", "--namespace-file", str(ns), stdin=WORKLOADS)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("Pod default/p: SKIP [not-enabled]" in line for line in lines)
    assert any("Pod default/host: SKIP [host-network]" in line for line in lines)
    r = run("explain", "-f", str(DEMO))
    assert "Deployment bookstore/bookstore: INJECT [namespace-enabled]" in r.stdout


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("serve", "inject", "explain"):
        assert cmd in r.stdout


def test_template_dir_overrides_a_template_by_name(tmp_path):
    custom = (
        (ROOT / "sidecar_templates" / "sidecar.yaml")
        .read_text()
        .replace("imagePullPolicy: IfNotPresent", "imagePullPolicy: Always\nworkingDir: /custom")
    )
    (tmp_path / "sidecar.yaml").write_text(custom)
    r = run("inject", "-f", str(DEMO), "--template-dir", str(tmp_path), "--no-secrets")
    assert r.returncode == 0, r.stderr
    dep = next(d for d in yaml.safe_load_all(r.stdout) if d["kind"] == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    sidecar = next(c for c in spec["containers"] if c["name"] == "sidecar")
    assert sidecar["workingDir"] == "/custom" and sidecar["imagePullPolicy"] == "Always"
    assert spec["initContainers"][0]["imagePullPolicy"] == "IfNotPresent", (
        "other templates stay the packaged ones"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [\n", "not valid YAML"),
        ("- a list\n", "expected a YAML dict"),
        ("name: ${nope}\n", "unknown value(s) ${nope}"),
    ],
)
def test_bad_template_is_a_clear_error(tmp_path, text, message):
    (tmp_path / "sidecar.yaml").write_text(text)
    r = run("inject", "-f", str(DEMO), "--template-dir", str(tmp_path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr


def test_empty_labels_in_a_manifest_are_fine():
    manifest = "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}\nspec:\n  template:\n    metadata:\n      labels:\n    spec:\n      containers: [{name: a, image: a}]\n"
    r = run("inject", "-f", "-", "--no-secrets", stdin=manifest)
    assert r.returncode == 0, r.stderr
    tmpl = yaml.safe_load(r.stdout)["spec"]["template"]
    assert "fsm-proxy-uuid" in tmpl["metadata"]["labels"]
