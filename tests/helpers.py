"""Helpers shared by the HTTP, CLI and e2e tests: free ports, processes, AdmissionReviews."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}:\n{out}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def _serve(args: list[str], port: int, out: Any, timeout: float) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [str(BIN / "fsm-onboard"), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_port(port, proc, timeout=timeout)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve_standalone(cert_dir: Path, *extra: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Run ``fsm-onboard serve --standalone`` on a free loopback port until the block ends."""
    port = free_port()
    with _serve(["--standalone", "--cert-dir", str(cert_dir), *extra], port, subprocess.PIPE, 20) as proc:
        yield port, proc


@contextlib.contextmanager
def serve_cluster(kubeconfig: Path, workdir: Path, *extra: str) -> Iterator[tuple[int, Path]]:
    """Run ``fsm-onboard serve`` in cluster mode against ``kubeconfig``, registered by URL on a free
    loopback port; yields the port and the CA file. Its log is ``workdir/serve.log``."""
    port = free_port()
    cert_dir = workdir / "certs"
    log = workdir / "serve.log"
    args = ["--kubeconfig", str(kubeconfig), "--webhook-url", f"https://127.0.0.1:{port}",
            "--cert-dir", str(cert_dir), "--log-level", "info", "--service-cert-check-interval", "1", *extra]  # fmt: skip
    with open(log, "w") as out:
        try:
            with _serve(args, port, out, 60):
                yield port, cert_dir / "ca.crt"
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log.read_text()}") from None


def review(
    pod: dict[str, Any], *, uid: str = "uid-1", namespace: str = "demo", dry_run: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "dryRun": dry_run,
            "object": pod,
        },
    }


def sample_pod(annotations: dict[str, str] | None = None, containers: int = 3) -> dict[str, Any]:
    """A realistic pod: several containers with ports, env, resources and probes (~10 KB as JSON)."""
    cs = []
    for i in range(containers):
        cs.append(
            {
                "name": f"app-{i}",
                "image": f"registry.example/team/app-{i}:1.2.{i}",
                "ports": [
                    {"name": "http", "containerPort": 8080 + i},
                    {"name": "metrics", "containerPort": 9100 + i},
                ],
                "env": [{"name": f"SETTING_{j}", "value": "x" * 40} for j in range(25)],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                "readinessProbe": {"tcpSocket": {"port": 8080 + i}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d9f8b6c5d-",
            "namespace": "demo",
            "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5d"},
            "annotations": {"flomesh.io/sidecar-injection": "enabled", **(annotations or {})},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d9f8b6c5d",
                    "uid": "6a0c2c1e-0000-4000-8000-000000000000",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": "web",
            "containers": cs,
            "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
        },
    }


class TLSServer:
    """A blocking TLS server on loopback for handshake tests: accept, handshake, ``respond``, close.

    Failed handshakes are collected in ``errors`` (a test asserts there are none)."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def respond(self, tls: ssl.SSLSocket) -> None:
        tls.sendall(b"ok")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    self.respond(tls)
            except Exception as exc:  # every failure is the test's business
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._stop.set()
        self._t.join()
        self.sock.close()
