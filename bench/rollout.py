"""A 1000-replica Deployment rolled out through the webhook on the local control plane.

kube-controller-manager creates the Pods (through admission, as in a real cluster), so this
measures the whole path: ReplicaSet controller → kube-apiserver → fsm-onboard (decision, render,
bootstrap cert from the key pool, Secret create) → Pod stored. Reports the time until all
Pods are stored, how many are injected / uninjected, failed admissions, and the webhook's p50/p99
(from its own latency histogram, interpolated as Prometheus' histogram_quantile does).

Run: .venv/bin/python -m bench.rollout [--replicas 1000]
(FSM_ONBOARD_KUBECONFIG=<file> reuses a running control plane; otherwise a private one is started.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.common import write_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from helpers import BIN, serve_cluster  # noqa: E402

from webhook.kube.client import connect, path_for  # noqa: E402


@contextlib.contextmanager
def control_plane(tmp: Path) -> Iterator[Path]:
    existing = os.environ.get("FSM_ONBOARD_KUBECONFIG")
    if existing:
        yield Path(existing)
        return
    from dev import cluster as devcluster

    layout = devcluster.Layout(state_dir=tmp / "cluster", kubeconfig=tmp / "kubeconfig")
    started, _ = devcluster.up(layout, timeout=180)
    try:
        yield started.kubeconfig
    finally:
        devcluster.down(layout)


def histogram(metrics: str, name: str) -> tuple[list[tuple[float, float]], float]:
    buckets, count = [], 0.0
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
        elif line.startswith(f"{name}_count"):
            count = float(line.rsplit(" ", 1)[1])
    return buckets, count


def quantile(q: float, buckets: list[tuple[float, float]], count: float) -> float:
    """histogram_quantile(): linear interpolation inside the bucket holding the q-th observation."""
    if count == 0:
        return float("nan")
    rank, prev_le, prev_count = q * count, 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_count) / max(cum - prev_count, 1e-9))
        prev_le, prev_count = le, cum
    return prev_le


def counter(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rollout(
    kube, kubeconfig: Path, replicas: int, timeout: float, *, onboard: bool
) -> tuple[float, list[dict]]:
    """Create a Deployment of ``replicas`` in a fresh namespace; seconds until all Pods are stored."""
    ns = f"rollout-{uuid.uuid4().hex[:6]}"
    kube.create(path_for("v1", "namespaces"), {"metadata": {"name": ns}})
    if onboard:
        subprocess.run(
            [str(BIN / "fsm-onboard"), "namespace", "add", ns, "--kubeconfig", str(kubeconfig)],
            check=True,
            capture_output=True,
        )
    deadline = time.monotonic() + 30
    while not kube.get(path_for("v1", "serviceaccounts", ns))["items"]:
        if time.monotonic() > deadline:
            raise SystemExit("rollout: the default ServiceAccount never appeared")
        time.sleep(0.1)
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "big"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:1",
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/r", "port": 8080}},
                        }
                    ]
                },
            },
        },
    }
    started = time.monotonic()
    kube.create(path_for("apps/v1", "deployments", ns), dep)
    pods: list[dict] = []
    while time.monotonic() - started < timeout:
        pods = kube.get(path_for("v1", "pods", ns), params={"resourceVersion": "0"}, timeout=60)["items"]
        if len(pods) >= replicas:
            break
        time.sleep(0.25)
    elapsed = time.monotonic() - started
    pods = kube.get(path_for("v1", "pods", ns), timeout=60)["items"]
    kube.delete(path_for("v1", "namespaces", name=ns))
    return elapsed, pods


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with control_plane(tmp) as kubeconfig, serve_cluster(kubeconfig, tmp) as (port, ca):
            kube = connect(str(kubeconfig))
            base_s, base_pods = rollout(kube, kubeconfig, args.replicas, args.timeout, onboard=False)
            print(
                f"[rollout] baseline without the webhook (namespace not onboarded): {len(base_pods)} pods in {base_s:.2f} s"
            )
            elapsed, pods = rollout(kube, kubeconfig, args.replicas, args.timeout, onboard=True)
            stored = len(pods)
            injected = sum(
                1 for pod in pods if any(c["name"] == "sidecar" for c in pod["spec"]["containers"])
            )
            secrets = len(
                {(pod["metadata"].get("labels") or {}).get("fsm-proxy-uuid") for pod in pods} - {None}
            )
            with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as c:
                metrics = c.get(f"https://127.0.0.1:{port}/metrics").text
            buckets, count = histogram(metrics, "fsm_onboard_admission_seconds")
            sbuckets, scount = histogram(metrics, "fsm_onboard_bootstrap_secret_seconds")
            result = {
                "replicas": args.replicas,
                "seconds_to_all_stored": round(elapsed, 2),
                "baseline_seconds_without_webhook": round(base_s, 2),
                "pods_stored": stored,
                "injected": injected,
                "uninjected": stored - injected,
                "failed_admissions": counter(metrics, "fsm_onboard_admissions_total", result="error")
                + counter(metrics, "fsm_onboard_admissions_total", result="denied"),
                "distinct_proxy_uuids": secrets,
                "webhook_admissions": count,
                "webhook_p50_ms": round(quantile(0.50, buckets, count) * 1000, 2),
                "webhook_p99_ms": round(quantile(0.99, buckets, count) * 1000, 2),
                "secret_create_p50_ms": round(quantile(0.50, sbuckets, scount) * 1000, 2),
                "secret_create_p99_ms": round(quantile(0.99, sbuckets, scount) * 1000, 2),
                "pods_per_s": round(stored / elapsed, 1),
                "controller_manager": "kube-api-qps=200, kube-api-burst=400 (dev/cluster.py)",
                "targets": {"seconds": 30, "uninjected": 0, "failed": 0},
            }
    print(
        f"[rollout] {result['pods_stored']}/{args.replicas} pods stored in {result['seconds_to_all_stored']} s "
        f"({result['pods_per_s']}/s); injected {result['injected']}, uninjected {result['uninjected']}, "
        f"failed admissions {result['failed_admissions']:.0f}; webhook p50 {result['webhook_p50_ms']} ms, "
        f"p99 {result['webhook_p99_ms']} ms over {result['webhook_admissions']:.0f} admissions "
        f"(baseline without webhook: {result['baseline_seconds_without_webhook']} s); of which bootstrap Secret "
        f"create p50 {result['secret_create_p50_ms']} ms, p99 {result['secret_create_p99_ms']} ms"
    )
    write_result("rollout", result)
    ok = stored == args.replicas and result["uninjected"] == 0 and result["failed_admissions"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
