"""Admission throughput and latency of `fsm-onboard serve --standalone` over TLS, and in-process cost.

Three measurements, in one run:
1. in-process: one AdmissionReview body → response bytes through `Mutator.review` (no HTTP);
2. saturation: C keep-alive HTTPS connections posting back to back (closed loop) → admissions/s;
3. fixed rate: an open-loop schedule of R admissions/s (default 500) → p50/p99 at that rate.

The body is a realistic ~10 KB pod: 3 containers with ports, env, resources and probes.
Run: .venv/bin/python -m bench.admission [--rate 500] [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import HttpsConn, summarize, write_result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import review, sample_pod, serve_standalone

PATH = "/mutate-pod-creation"


def body() -> bytes:
    return orjson.dumps(review(sample_pod(containers=3)))


def in_process(n: int) -> dict[str, float]:
    from webhook.inject import Context, load_templates
    from webhook.meshconfig import MeshConfig
    from webhook.mutate import Mutator, standalone_namespace

    mutator = Mutator(load_templates(), Context(), standalone_namespace("fsm"), MeshConfig)
    payload = body()

    async def run() -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            status, answer = await mutator.review(payload)
            out.append(time.perf_counter() - t0)
            assert status == 200 and b'"allowed":true' in answer
        return out

    lat = asyncio.run(run())[n // 10 :]  # drop warm-up
    s = summarize(lat)
    return {
        "iterations": len(lat),
        "p50_us": round(s["p50_ms"] * 1000, 1),
        "mean_us": round(s["mean_ms"] * 1000, 1),
        "p99_us": round(s["p99_ms"] * 1000, 1),
    }


async def _connect(port: int, ca: Path, n: int) -> list[HttpsConn]:
    ctx = ssl.create_default_context(cafile=str(ca))
    conns = [HttpsConn("127.0.0.1", port, ctx) for _ in range(n)]
    await asyncio.gather(*(c.connect() for c in conns))
    return conns


async def saturation(port: int, ca: Path, connections: int, seconds: float) -> dict[str, float]:
    payload = body()
    conns = await _connect(port, ca, connections)
    lat: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: HttpsConn) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, answer = await conn.post(PATH, payload)
            lat.append(time.perf_counter() - t0)
            if status != 200 or b'"allowed":true' not in answer:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in conns))
    return {
        "connections": connections,
        "seconds": round(elapsed, 2),
        "admissions_per_s": round(len(lat) / elapsed, 1),
        "errors": errors,
        **summarize(lat),
    }


async def fixed_rate(port: int, ca: Path, rate: float, seconds: float, connections: int) -> dict[str, float]:
    """Open loop: request i is due at start + i/rate; latency counts from when it was due."""
    payload = body()
    conns = await _connect(port, ca, connections)
    idle: asyncio.Queue[HttpsConn] = asyncio.Queue()
    for c in conns:
        idle.put_nowait(c)
    total = int(rate * seconds)
    lat: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.05

    async def one(due: float) -> None:
        nonlocal errors
        conn = await idle.get()
        try:
            status, answer = await conn.post(PATH, payload)
            if status != 200 or b'"allowed":true' not in answer:
                errors += 1
        finally:
            idle.put_nowait(conn)
        lat.append(time.perf_counter() - due)

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in conns))
    return {
        "target_per_s": rate,
        "achieved_per_s": round(total / elapsed, 1),
        "errors": errors,
        **summarize(lat),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--iterations", type=int, default=3000)
    args = p.parse_args(argv)

    result: dict[str, object] = {"body_bytes": len(body())}
    result["in_process"] = ip = in_process(args.iterations)
    print(
        f"[admission] in-process: p50 {ip['p50_us']} us, mean {ip['mean_us']} us, p99 {ip['p99_us']} us per admission"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cert_dir = Path(tmp)
        with serve_standalone(cert_dir) as (port, _proc):
            ca = cert_dir / "ca.crt"
            asyncio.run(saturation(port, ca, 4, 1.0))  # warm-up
            result["saturation"] = sat = asyncio.run(saturation(port, ca, args.connections, args.seconds))
            print(
                f"[admission] saturation ({sat['connections']} conns): {sat['admissions_per_s']} admissions/s, "
                f"p50 {sat['p50_ms']} ms, p99 {sat['p99_ms']} ms, errors {sat['errors']}"
            )
            result["fixed_rate"] = fr = asyncio.run(
                fixed_rate(port, ca, args.rate, args.seconds, args.connections)
            )
            print(
                f"[admission] fixed rate {fr['target_per_s']}/s (achieved {fr['achieved_per_s']}/s): "
                f"p50 {fr['p50_ms']} ms, p99 {fr['p99_ms']} ms, max {fr['max_ms']} ms, errors {fr['errors']}"
            )
    result["targets"] = {"p99_ms_at_500_per_s": 5.0, "in_process_us": 300.0}
    write_result("admission", result)
    ok = fr["errors"] == 0 and sat["errors"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
