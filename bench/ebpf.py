"""eBPF vs iptables on the app ↔ sidecar loopback leg, and eBPF load + attach time (cold and warm).

One pod (network namespace + cgroup v2 dir, tests/netns/ebpf_helpers.py); the test sidecar runs as
UID 1500 in the pod cgroup and echoes. The app (in the cgroup) connects to a peer address and is
redirected to 127.0.0.1:15001 by, in turn:
  iptables       `fsm-init --mode iptables` (nat OUTPUT REDIRECT, conntrack)
  ebpf-connect   connect4 + sockops + getsockopt, no sk_msg (TCP loopback stack still used)
  ebpf-skmsg     the full eBPF mode: sk_msg + sockhash carry the bytes
Per mode: request/response (small messages, latency and rate) and bulk echo throughput; median and
best of --repeat runs, modes interleaved per repeat so background load hits them alike.
Attach time: `fsm-init --mode ebpf` end to end, cold (empty header cache, new process) and warm.

Run (root): .venv/bin/python -m bench.ebpf [--rounds 20000] [--size 100] [--mbytes 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "netns"))
import ebpf_helpers as H

PEER_PORT = 8080
MODES = ("iptables", "ebpf-connect", "ebpf-skmsg")


def _run_client(pod: H.Pod, kind: str, *args: str) -> float:
    proc = pod.spawn([H.SYS_PYTHON, str(H.SCRIPT), kind, pod.peer_ip, str(PEER_PORT), *args])
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} client failed: {err.strip()}")
    return float(out.strip().splitlines()[-1])


def _setup(pod: H.Pod, mode: str) -> None:
    from ebpf.redirect import attach_only
    from initcontainer.options import Options

    if mode == "iptables":
        res = H.fsm_init("--mode", "iptables", "--pod-ip", pod.pod_ip, ns=pod.ns)
        if res.returncode != 0:
            raise RuntimeError(f"fsm-init --mode iptables failed: {res.stderr.strip()}")
    else:
        attach_only(
            Options(mode="ebpf", cgroup=str(pod.cgroup), pod_ip=pod.pod_ip), skmsg=mode == "ebpf-skmsg"
        )


def _teardown(pod: H.Pod, mode: str) -> None:
    from ebpf.redirect import cleanup
    from initcontainer.options import Options

    if mode == "iptables":
        H.fsm_init("--mode", "iptables", "--cleanup", ns=pod.ns)
    else:
        cleanup(Options(mode="ebpf", cgroup=str(pod.cgroup)))


def _check_path(pod: H.Pod) -> str:
    return pod.client(pod.peer_ip, PEER_PORT)


def loopback(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, dict[str, list[float]]] = {m: {"rr_s": [], "stream_s": []} for m in MODES}
    total = args.mbytes * 1024 * 1024
    with H.make_pod("b") as pod:
        pod.start("server", str(PEER_PORT), ns=pod.peer, in_cgroup=False)
        pod.start("proxy", "15001", "15003", uid=H.PROXY_UID)
        for rep in range(args.repeat):
            for mode in MODES:
                _setup(pod, mode)
                try:
                    first = _check_path(pod)
                    if not first.startswith("proxy 15001"):
                        raise RuntimeError(f"{mode}: traffic did not reach the proxy: {first!r}")
                    runs[mode]["rr_s"].append(_run_client(pod, "rr", str(args.rounds), str(args.size)))
                    runs[mode]["stream_s"].append(_run_client(pod, "stream", str(total), str(args.chunk)))
                finally:
                    _teardown(pod, mode)
                print(
                    f"  repeat {rep + 1}/{args.repeat} {mode}: rr {runs[mode]['rr_s'][-1]:.3f}s "
                    f"stream {runs[mode]['stream_s'][-1]:.3f}s",
                    flush=True,
                )
    out: dict[str, Any] = {}
    for mode, r in runs.items():
        rr = statistics.median(r["rr_s"])
        st = statistics.median(r["stream_s"])
        rr_best, st_best = min(r["rr_s"]), min(r["stream_s"])
        out[mode] = {
            "rr_latency_us": round(rr / args.rounds * 1e6, 2),
            "rr_per_s": round(args.rounds / rr),
            "stream_mb_per_s": round(total / st / 1e6, 1),
            "best": {
                "rr_latency_us": round(rr_best / args.rounds * 1e6, 2),
                "rr_per_s": round(args.rounds / rr_best),
                "stream_mb_per_s": round(total / st_best / 1e6, 1),
            },
            "runs": r,
        }
    base = out["iptables"]
    for mode in MODES[1:]:
        out[mode]["rr_speedup_vs_iptables"] = round(out[mode]["rr_per_s"] / base["rr_per_s"], 3)
        out[mode]["stream_speedup_vs_iptables"] = round(
            out[mode]["stream_mb_per_s"] / base["stream_mb_per_s"], 3
        )
        best, bbase = out[mode]["best"], base["best"]
        best["rr_speedup_vs_iptables"] = round(best["rr_per_s"] / bbase["rr_per_s"], 3)
        best["stream_speedup_vs_iptables"] = round(best["stream_mb_per_s"] / bbase["stream_mb_per_s"], 3)
    return out


_READY = re.compile(
    r"ebpf ready in (\d+) ms \(headers (\d+), compile (\d+), load (\d+), maps (\d+), attach (\d+) ms"
)


def attach_times(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    with H.make_pod("a") as pod, tempfile.TemporaryDirectory(prefix="fsm-hdr-") as tmp:
        for i in range(args.attach_runs + 1):
            kind = "cold" if i == 0 else "warm"
            env = dict(os.environ, FSM_BPF_HEADER_CACHE=str(Path(tmp) / "cache"), FSM_BPF_HEADERS="stub")
            env.pop("BCC_KERNEL_SOURCE", None)
            start = time.perf_counter()
            res = H.fsm_init(
                "--mode", "ebpf", "--cgroup", str(pod.cgroup), "--pod-ip", pod.pod_ip, ns=pod.ns, env=env
            )
            wall = time.perf_counter() - start
            if res.returncode != 0:
                raise RuntimeError(f"fsm-init --mode ebpf failed: {res.stderr.strip()}")
            m = _READY.search(res.stdout + res.stderr)
            if not m:
                raise RuntimeError(f"no timing line in fsm-init output: {res.stdout}")
            total, headers, compile_, load, maps, attach = (int(x) for x in m.groups())
            results[kind].append(
                {
                    "process_wall_ms": round(wall * 1000),
                    "ebpf_total_ms": total,
                    "headers_ms": headers,
                    "compile_ms": compile_,
                    "load_ms": load,
                    "maps_ms": maps,
                    "attach_ms": attach,
                }
            )
            H.fsm_init("--mode", "ebpf", "--cgroup", str(pod.cgroup), "--cleanup", ns=pod.ns)
    warm = results["warm"]
    return {
        "cold": results["cold"][0],
        "warm_median": {k: statistics.median(r[k] for r in warm) for k in warm[0]},
        "warm_runs": warm,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ebpf", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000, help="request/response round trips per run")
    parser.add_argument("--size", type=int, default=100, help="request/response message size (bytes)")
    parser.add_argument("--mbytes", type=int, default=256, help="bulk echo volume per run (MiB)")
    parser.add_argument("--chunk", type=int, default=65536, help="bulk write size (bytes)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--attach-runs", type=int, default=5, help="warm fsm-init runs after the cold one")
    args = parser.parse_args(argv)
    problem = H.environment_problem()
    if problem:
        print(f"bench.ebpf: {problem}", file=sys.stderr)
        return 1
    try:
        print("loopback leg (app <-> sidecar), median of", args.repeat, flush=True)
        lo = loopback(args)
        print("load + attach (fsm-init --mode ebpf)", flush=True)
        at = attach_times(args)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"bench.ebpf: {exc}", file=sys.stderr)
        return 1
    for label, pick in (("median", lambda r: r), ("best", lambda r: r["best"])):
        print(
            f"[{label}] {'mode':<14}{'RR latency us':>15}{'RR/s':>10}{'bulk MB/s':>12}{'RR x':>8}{'bulk x':>8}"
        )
        for mode in MODES:
            r = pick(lo[mode])
            print(
                f"[{label}] {mode:<14}{r['rr_latency_us']:>15}{r['rr_per_s']:>10}{r['stream_mb_per_s']:>12}"
                f"{r.get('rr_speedup_vs_iptables', 1.0):>8}{r.get('stream_speedup_vs_iptables', 1.0):>8}"
            )
    cold, warm = at["cold"], at["warm_median"]
    print(
        f"attach cold: {cold['ebpf_total_ms']} ms in fsm-init ({cold['process_wall_ms']} ms process wall, "
        f"headers {cold['headers_ms']} ms, compile {cold['compile_ms']} ms)"
    )
    print(
        f"attach warm: {warm['ebpf_total_ms']} ms in fsm-init ({warm['process_wall_ms']} ms process wall, "
        f"compile {warm['compile_ms']} ms)  [target <= 500 ms]"
    )
    targets = {
        "loopback_throughput_1_3x": lo["ebpf-skmsg"]["stream_speedup_vs_iptables"] >= 1.3,
        "loopback_rr_1_3x": lo["ebpf-skmsg"]["rr_speedup_vs_iptables"] >= 1.3,
        "attach_warm_500ms": warm["ebpf_total_ms"] <= 500,
    }
    print("targets:", ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in targets.items()))
    write_result("ebpf", {"params": vars(args), "loopback": lo, "attach": at, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
