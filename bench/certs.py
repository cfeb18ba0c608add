"""Certificates in the admission path, against a real kube-apiserver.

1. key pool refill rate (ECDSA P-256, RSA-2048) and in-process bootstrap-cert issue cost, with the
   pool and with FSM's inline RSA-2048 generation for contrast;
2. admission with bootstrap cert + bootstrap Secret creation: an open-loop schedule of R
   AdmissionReviews/s (default 100) posted straight to the webhook → p50/p99, server-side handling;
3. the same webhook registered in the API server, Pods created at R/s → pod-create p50/p99.

The cluster: FSM_ONBOARD_KUBECONFIG=<file> reuses one, else a private one is started (dev/cluster).
Run: .venv/bin/python -m bench.certs [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import HttpsConn, asgi_request_body, summarize, write_result
from webhook.certs import kube
from webhook.certs.ca import CA
from webhook.certs.files import ensure_cert_dir
from webhook.certs.issuer import Issuer, bootstrap_secret_data
from webhook.certs.keys import generate_key
from webhook.certs.pool import KeyPool
from webhook.certs.reload import CertReloader

ROOT = Path(__file__).resolve().parent.parent
PATH = "/mutate-pod-creation"


# --- a minimal admission server: bootstrap cert + Secret, nothing else (shared with e2e tests) ---


class Recorder:
    def __init__(self) -> None:
        self.handling: list[float] = []
        self.issue: list[float] = []
        self.secret: list[float] = []
        self.failures: list[str] = []


def admission_app(
    issuer: Callable[[], Issuer], core: Any, recorder: Recorder, *, secret_timeout: float = 5.0
) -> Callable[..., Any]:
    """ASGI: POST AdmissionReview → issue a bootstrap cert, create `sidecar-bootstrap-config-<uuid>`
    (not on dryRun), label the pod `fsm-proxy-uuid`. GET /stats → handling times and pool stats."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await asgi_request_body(scope, receive, send)
        if body is None:
            return
        if scope["method"] == "GET":
            out = orjson.dumps(
                {
                    "handling": recorder.handling,
                    "issue": recorder.issue,
                    "secret": recorder.secret,
                    "failures": recorder.failures,
                    "pool": issuer().key_pool.stats(),
                }
            )
        else:
            out = await handle(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))],
            }
        )
        await send({"type": "http.response.body", "body": out})

    async def handle(body: bytes) -> bytes:
        t0 = time.perf_counter()
        req = orjson.loads(body)["request"]
        pod = req.get("object") or {}
        ns = req.get("namespace") or pod.get("metadata", {}).get("namespace") or "default"
        sa = pod.get("spec", {}).get("serviceAccountName") or "default"
        proxy = str(uuid.uuid4())
        response: dict[str, Any] = {"uid": req["uid"], "allowed": True}
        try:
            issued = issuer().issue_bootstrap(proxy, sa, ns)
            t1 = time.perf_counter()
            recorder.issue.append(t1 - t0)
            if not req.get("dryRun"):
                await asyncio.to_thread(
                    kube.create_secret,
                    core,
                    ns,
                    f"{kube.BOOTSTRAP_PREFIX}{proxy}",
                    bootstrap_secret_data(issued),
                    labels={"fsm-proxy-uuid": proxy},
                    request_timeout=secret_timeout,
                )
                recorder.secret.append(time.perf_counter() - t1)
            ops: list[dict[str, Any]] = []
            if not pod.get("metadata", {}).get("labels"):
                ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
            ops.append({"op": "add", "path": "/metadata/labels/fsm-proxy-uuid", "value": proxy})
            response |= {"patchType": "JSONPatch", "patch": base64.b64encode(orjson.dumps(ops)).decode()}
        except Exception as exc:
            recorder.failures.append(f"{type(exc).__name__}: {exc}")
            response = {"uid": req["uid"], "allowed": False, "status": {"code": 500, "message": str(exc)}}
        recorder.handling.append(time.perf_counter() - t0)
        return orjson.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    return app


class ThreadedServer:
    """uvicorn over TLS in a thread, its SSLContext watched by a CertReloader."""

    def __init__(self, app: Any, cert: Path, key: Path, *, port: int = 0) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            log_level="warning",
        )
        config.load()
        assert isinstance(config.ssl, ssl.SSLContext)
        self.reloader = CertReloader(config.ssl, cert, key)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.02)
        self.port: int = self.server.servers[0].sockets[0].getsockname()[1]

    def close(self) -> None:
        self.reloader.stop()
        self.server.should_exit = True
        self.thread.join(timeout=10)


def mutating_webhook(name: str, url: str, ca_pem: bytes, namespace: str) -> Any:
    from kubernetes import client

    return client.V1MutatingWebhookConfiguration(
        metadata=client.V1ObjectMeta(name=name),
        webhooks=[
            client.V1MutatingWebhook(
                name="fsm-inject.k8s.io",
                admission_review_versions=["v1"],
                side_effects="NoneOnDryRun",
                failure_policy="Fail",
                timeout_seconds=10,
                client_config=client.AdmissionregistrationV1WebhookClientConfig(
                    url=url, ca_bundle=base64.b64encode(ca_pem).decode()
                ),
                rules=[
                    client.V1RuleWithOperations(
                        api_groups=[""], api_versions=["v1"], operations=["CREATE"], resources=["pods"]
                    )
                ],
                namespace_selector=client.V1LabelSelector(
                    match_labels={"kubernetes.io/metadata.name": namespace}
                ),
            )
        ],
    )


# --- measurements ---


def bench_pool() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_type, n in (("ecdsa-p256", 2000), ("rsa-2048", 24)):
        pool = KeyPool(size=n, key_type=key_type)
        t0 = time.perf_counter()
        pool.start()
        pool.wait_full(300)
        elapsed = time.perf_counter() - t0
        pool.stop()
        out[key_type] = {
            "keys": n,
            "seconds": round(elapsed, 3),
            "refill_keys_per_second": round(n / elapsed, 1),
        }
        print(f"[certs] key pool {key_type}: {n / elapsed:,.0f} keys/s")
    return out


def bench_issue() -> dict[str, Any]:
    ca = CA.generate()
    pool = KeyPool(size=4096).start()
    pool.wait_full(60)
    issuer = Issuer(ca, pool)
    lat = []
    for i in range(2000):
        t0 = time.perf_counter()
        issuer.issue_bootstrap(f"u{i}", "sa", "ns")
        lat.append(time.perf_counter() - t0)
    pool.stop()
    rsa_ca = CA.generate(key_type="rsa-2048")
    inline = []
    for _ in range(20):  # FSM: generate RSA-2048 inside the admission call, sign with an RSA CA
        t0 = time.perf_counter()
        key = generate_key("rsa-2048")
        from webhook.certs.leaf import build_leaf

        build_leaf(
            rsa_ca, key.public_key(), common_name="x.sidecar.sa.ns.cluster.local", validity=timedelta(days=1)
        )
        inline.append(time.perf_counter() - t0)
    res = {"pool_ecdsa": summarize(lat), "inline_rsa2048_fsm_style": summarize(inline)}
    print(f"[certs] issue_bootstrap with pool: p50 {res['pool_ecdsa']['p50_ms']} ms, p99 {res['pool_ecdsa']['p99_ms']} ms;"
          f" inline RSA-2048: p50 {res['inline_rsa2048_fsm_style']['p50_ms']} ms")  # fmt: skip
    return res


async def open_loop(
    port: int, ca_file: Path, rate: float, seconds: float, lanes: int, ns: str
) -> dict[str, Any]:
    """R requests/s on a fixed schedule; latency counts from the scheduled time (no coordinated omission)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    conns = [HttpsConn("127.0.0.1", port, ctx) for _ in range(lanes)]
    for c in conns:
        await c.connect()
    n = int(rate * seconds)
    lat: list[float] = []
    errors: list[str] = []
    start = time.perf_counter() + 0.2

    async def lane(k: int) -> None:
        for i in range(k, n, lanes):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            review = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": f"r{i}",
                    "namespace": ns,
                    "operation": "CREATE",
                    "object": {
                        "metadata": {"name": f"p{i}", "namespace": ns},
                        "spec": {"serviceAccountName": "bench"},
                    },
                },
            }
            status, body = await conns[k].post(PATH, orjson.dumps(review))
            lat.append(time.perf_counter() - at)
            if status != 200 or not orjson.loads(body)["response"]["allowed"]:
                errors.append(body.decode()[:200])

    await asyncio.gather(*(lane(k) for k in range(lanes)))
    elapsed = time.perf_counter() - start
    for c in conns:
        await c.close()
    return {"rate": rate, "achieved_rate": round(n / elapsed, 1), **summarize(lat), "errors": len(errors)}


def pods_through_apiserver(core: Any, ns: str, rate: float, seconds: float) -> dict[str, Any]:
    n = int(rate * seconds)
    lat: list[float] = []
    errors: list[str] = []
    start = time.perf_counter() + 0.2

    def one(i: int) -> None:
        at = start + i / rate
        d = at - time.perf_counter()
        if d > 0:
            time.sleep(d)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"pod-{i}"},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
        }
        try:  # raw dicts: the client's model (de)serialisation would load the box more than the server
            resp = core.create_namespaced_pod(ns, pod, _preload_content=False)
            created = orjson.loads(resp.read())
            assert "fsm-proxy-uuid" in created["metadata"].get("labels", {})
        except Exception as exc:
            errors.append(str(exc)[:200])
        lat.append(time.perf_counter() - at)

    with ThreadPoolExecutor(max_workers=16) as ex:
        list(ex.map(one, range(n)))
    return {"rate": rate, **summarize(lat), "errors": len(errors), "error_sample": errors[:3]}


def start_cluster(tmp: Path) -> tuple[Path, Callable[[], None]]:
    existing = os.environ.get("FSM_ONBOARD_KUBECONFIG")
    if existing:
        return Path(existing), lambda: None
    sys.path.insert(0, str(ROOT))
    from dev import cluster as devcluster

    layout = devcluster.Layout(state_dir=tmp / "cluster", kubeconfig=tmp / "kubeconfig")
    started, _ = devcluster.up(layout, timeout=180)

    def stop() -> None:
        devcluster.down(layout)

    return started.kubeconfig, stop


def serve_main(kubeconfig: str, cert_dir: Path, port_file: Path, namespace: str) -> int:
    """The webhook process under test (a subprocess so the load generator does not share its GIL)."""
    core, _ = kube.apis_from_kubeconfig(kubeconfig)
    files = ensure_cert_dir(cert_dir, ["localhost", "127.0.0.1"])
    ca = kube.ensure_ca_secret(core, namespace)
    pool = KeyPool(size=256).start()
    pool.wait_full(60)
    issuer = Issuer(ca, pool)
    rec = Recorder()
    srv = ThreadedServer(admission_app(lambda: issuer, core, rec), files.cert, files.key)
    port_file.write_text(str(srv.port))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    srv.close()
    pool.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.certs", description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--lanes", type=int, default=8)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    p.add_argument("--cert-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        return serve_main(a.kubeconfig, a.cert_dir, a.port_file, "fsm-system")

    result: dict[str, Any] = {
        "load_average_before": os.getloadavg(),
        "key_pool": bench_pool(),
        "issue": bench_issue(),
    }
    from kubernetes import client

    with tempfile.TemporaryDirectory(prefix="bench-certs-") as td:
        tmp = Path(td)
        kubeconfig, stop_cluster = start_cluster(tmp)
        core, adm = kube.apis_from_kubeconfig(kubeconfig)
        ns = f"bench-certs-{uuid.uuid4().hex[:6]}"
        hook = f"bench-certs-{ns}"
        proc = None
        try:
            for name in ("fsm-system", ns):
                try:
                    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise
            port_file = tmp / "port"
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.certs", "--serve", "--kubeconfig", str(kubeconfig),
                 "--cert-dir", str(tmp / "certs"), "--port-file", str(port_file)],
                cwd=ROOT,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the bench webhook did not start")
                time.sleep(0.05)
            port = int(port_file.read_text())
            direct = asyncio.run(open_loop(port, tmp / "certs" / "ca.crt", a.rate, a.seconds, a.lanes, ns))
            print(f"[certs] direct admissions at {a.rate:.0f}/s: p50 {direct['p50_ms']} ms, p99 {direct['p99_ms']} ms,"
                  f" errors {direct['errors']}")  # fmt: skip
            adm.create_mutating_webhook_configuration(
                mutating_webhook(
                    hook, f"https://127.0.0.1:{port}{PATH}", (tmp / "certs" / "ca.crt").read_bytes(), ns
                )
            )
            time.sleep(1.0)  # the API server's webhook informer
            pods = pods_through_apiserver(core, ns, a.rate, min(a.seconds, 5.0))
            print(f"[certs] pod creates through the API server at {a.rate:.0f}/s: p50 {pods['p50_ms']} ms,"
                  f" p99 {pods['p99_ms']} ms, errors {pods['errors']}")  # fmt: skip
            ctx = ssl.create_default_context(cafile=str(tmp / "certs" / "ca.crt"))
            import urllib.request

            with urllib.request.urlopen(f"https://127.0.0.1:{port}/stats", context=ctx, timeout=10) as r:
                stats = orjson.loads(r.read())
            handling = summarize(stats["handling"])
            result["webhook_issue_only"] = summarize(stats["issue"])
            result["webhook_secret_create_only"] = summarize(stats["secret"])
            print(f"[certs]   of which cert issue: p50 {result['webhook_issue_only']['p50_ms']} ms,"
                  f" p99 {result['webhook_issue_only']['p99_ms']} ms; Secret create: p50"
                  f" {result['webhook_secret_create_only']['p50_ms']} ms, p99 {result['webhook_secret_create_only']['p99_ms']} ms")  # fmt: skip
            print(f"[certs] webhook handling (cert + Secret): p50 {handling['p50_ms']} ms, p99 {handling['p99_ms']} ms;"
                  f" pool misses {stats['pool']['pool_misses']}")  # fmt: skip
            result |= {
                "direct_admissions": direct,
                "pods_through_apiserver": pods,
                "webhook_handling": handling,
                "webhook_failures": len(stats["failures"]),
                "webhook_failure_sample": stats["failures"][:3],
                "pool_after": stats["pool"],
                "target_p99_ms": 20,
            }
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for fn in (
                lambda: adm.delete_mutating_webhook_configuration(hook),
                lambda: core.delete_namespace(ns),
            ):
                with contextlib.suppress(Exception):
                    fn()
            stop_cluster()
    result["load_average_after"] = os.getloadavg()
    write_result("certs", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
