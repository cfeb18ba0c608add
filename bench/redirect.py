"""Benchmark fsm-init: rule programming time per backend, and what the redirect costs traffic.

Runs as root in throw-away network namespaces (pod + client, veth, private addresses):
1. programming time: inside the pod namespace, time the applier per backend (fresh pod and rerun),
   plus the whole `fsm-init` CLI wall clock;
2. redirect cost: request/response latency (persistent connection and new connection each time)
   and bulk throughput from the client namespace to an echo server in the pod, direct (excluded
   port) versus intercepted through the minimal test proxy (tests/netns/proxy.py, UID 1500).
`.venv/bin/python -m bench.redirect` prints the figures and writes bench/results/redirect.json.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "redirect.json"
BACKENDS = ("iptables-legacy", "iptables-nft", "nftables")
ECHO_PORTS = (8080, 8081)  # 8080 intercepted, 8081 excluded (direct)
SINK_PORTS = (8090, 8091)
RTT_ROUNDS = 2000
CONNECTS = 300
BULK_BYTES = 64 * 1024 * 1024
MSG = b"x" * 64


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2),
        "min_ms": round(min(values), 2),
        "max_ms": round(max(values), 2),
    }


# ---------------------------------------------------------------- inside the pod namespace


def inner_apply(repeat: int) -> dict[str, object]:
    """Time the appliers in this namespace (run via `ip netns exec`)."""
    from initcontainer.executor import SubprocessExecutor
    from initcontainer.options import parse_options
    from initcontainer.redirect import apply_redirect, cleanup_redirect, resolve

    quiet = lambda _m: None  # noqa: E731
    out: dict[str, object] = {}
    for backend in BACKENDS:
        opts = parse_options(
            [
                "--mode",
                backend,
                "--inbound-port-exclusion-list",
                "8081,8091",
                "--outbound-ip-range-exclusion-list",
                "10.96.0.0/12,fd00:10:96::/112",
                "--ipv6",
                "true",
            ],
            {},
        )
        ex = SubprocessExecutor()
        fresh, rerun, detect_apply, cleanup = [], [], [], []
        for _ in range(repeat):
            cleanup_redirect(opts, executor=ex, log=quiet)
            t0 = time.perf_counter()
            target = resolve(opts, ex, (4, 6), log=quiet)
            t1 = time.perf_counter()
            apply_redirect(opts, executor=ex, target=target, log=quiet)
            t2 = time.perf_counter()
            apply_redirect(opts, executor=ex, target=target, log=quiet)
            t3 = time.perf_counter()
            cleanup_redirect(opts, executor=ex, log=quiet)
            t4 = time.perf_counter()
            fresh.append((t2 - t1) * 1000)
            detect_apply.append((t2 - t0) * 1000)
            rerun.append((t3 - t2) * 1000)
            cleanup.append((t4 - t3) * 1000)
        out[backend] = {
            "apply_fresh": _summary_ms(fresh),
            "apply_rerun": _summary_ms(rerun),
            "detect_and_apply": _summary_ms(detect_apply),
            "cleanup": _summary_ms(cleanup),
        }
    return out


def echo_server() -> None:
    """Echo on ECHO_PORTS, byte-count sink on SINK_PORTS (v4); one thread per connection."""

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def sink(conn: socket.socket) -> None:
        total = 0
        with conn:
            while data := conn.recv(1 << 20):
                total += len(data)
            conn.sendall(f"{total}\n".encode())

    def serve(port: int, fn) -> None:  # type: ignore[no-untyped-def]
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(512)
        while True:
            conn, _ = ls.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=fn, args=(conn,), daemon=True).start()

    for port in ECHO_PORTS:
        threading.Thread(target=serve, args=(port, echo), daemon=True).start()
    for port in SINK_PORTS:
        threading.Thread(target=serve, args=(port, sink), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


# ---------------------------------------------------------------- from the client namespace


def measure_path(ns_socket, ns: str, host: str, echo_port: int, sink_port: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    def connect(port: int) -> socket.socket:
        s = ns_socket(ns, socket.AF_INET)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(5)
        s.connect((host, port))
        return s

    # persistent connection round trips
    s = connect(echo_port)
    rtts = []
    for _ in range(RTT_ROUNDS):
        t0 = time.perf_counter()
        s.sendall(MSG)
        got = 0
        while got < len(MSG):
            got += len(s.recv(4096))
        rtts.append((time.perf_counter() - t0) * 1e6)
    s.close()
    # a new connection per request (what the REDIRECT + proxy accept cost per connection)
    conns = []
    sockets = [ns_socket(ns, socket.AF_INET) for _ in range(CONNECTS)]  # setns cost kept out of the timing
    for c in sockets:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(5)
        t0 = time.perf_counter()
        c.connect((host, echo_port))
        c.sendall(MSG)
        got = 0
        while got < len(MSG):
            got += len(c.recv(4096))
        conns.append((time.perf_counter() - t0) * 1e6)
        c.close()
    # bulk throughput
    s = connect(sink_port)
    chunk = b"\0" * 65536
    t0 = time.perf_counter()
    sent = 0
    while sent < BULK_BYTES:
        s.sendall(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while data := s.recv(64):
        reply += data
    secs = time.perf_counter() - t0
    s.close()
    assert int(reply) == BULK_BYTES, reply
    return {
        "rtt_p50_us": round(statistics.median(rtts), 1),
        "rtt_p99_us": round(_pct(rtts, 99), 1),
        "connect_req_p50_us": round(statistics.median(conns), 1),
        "connect_req_p99_us": round(_pct(conns, 99), 1),
        "throughput_MBps": round(BULK_BYTES / secs / 1e6, 1),
    }


def orchestrate() -> dict[str, object]:
    sys.path.insert(0, str(ROOT / "tests" / "netns"))
    import initns

    problem = initns.environment_problem()
    if problem:
        raise SystemExit(f"bench.redirect: {problem}")
    topo = initns.make_topology()
    procs: list[subprocess.Popen[str]] = []
    proxy = None
    results: dict[str, object] = {"machine": os.uname().release, "cpus": os.cpu_count()}
    try:
        inner = initns.in_ns(topo.pod, sys.executable, "-m", "bench.redirect", "--inner-apply", "10")
        results["programming"] = json.loads(inner.stdout)
        cli = {}
        for backend in BACKENDS:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                initns.fsm_init(topo.pod, "--mode", backend, "--ipv6", "true")
                times.append((time.perf_counter() - t0) * 1000)
                initns.fsm_init(topo.pod, "--cleanup", "--mode", backend)
            cli[backend] = _summary_ms(times)
        results["cli_wall_clock"] = cli

        server = subprocess.Popen(
            ["ip", "netns", "exec", topo.pod, sys.executable, "-m", "bench.redirect", "--echo-server"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(server)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        proxy = initns.Proxy(topo.pod, quiet=True)
        traffic = {}
        for backend in ("iptables-nft", "nftables"):
            initns.fsm_init(topo.pod, "--mode", backend, "--inbound-port-exclusion-list", "8081,8091")
            traffic[backend] = {
                "direct": measure_path(initns.ns_socket, topo.client, topo.pod4, 8081, 8091),
                "via_proxy": measure_path(initns.ns_socket, topo.client, topo.pod4, 8080, 8090),
            }
            initns.fsm_init(topo.pod, "--cleanup", "--mode", backend)
        results["redirect_cost"] = traffic
    finally:
        if proxy:
            proxy.stop()
        for p in procs:
            p.terminate()
            p.wait(5)
        initns.destroy_topology(topo)
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--inner-apply"]:
        print(json.dumps(inner_apply(int(args[1]) if len(args) > 1 else 10)))
        return 0
    if args[:1] == ["--echo-server"]:
        echo_server()
        return 0
    os.chdir(ROOT)
    results = orchestrate()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print("rule programming, ms (in-process applier, IPv4+IPv6; target <= 50 ms):")
    for backend, figs in results["programming"].items():  # type: ignore[union-attr]
        print(
            f"  {backend:16} fresh {figs['apply_fresh']['p50_ms']:7.2f}  rerun {figs['apply_rerun']['p50_ms']:7.2f}"
            f"  detect+apply {figs['detect_and_apply']['p50_ms']:7.2f}  cleanup {figs['cleanup']['p50_ms']:7.2f}"
        )
    print("fsm-init CLI wall clock incl. Python start-up, ms:")
    for backend, figs in results["cli_wall_clock"].items():  # type: ignore[union-attr]
        print(f"  {backend:16} p50 {figs['p50_ms']:7.2f}")
    print("redirect cost (client netns -> pod netns, IPv4):")
    for backend, paths in results["redirect_cost"].items():  # type: ignore[union-attr]
        for path, f in paths.items():
            print(
                f"  {backend:13} {path:9} rtt p50 {f['rtt_p50_us']:7.1f} us  p99 {f['rtt_p99_us']:7.1f} us  "
                f"new-conn req p50 {f['connect_req_p50_us']:7.1f} us  p99 {f['connect_req_p99_us']:7.1f} us  "
                f"{f['throughput_MBps']:7.1f} MB/s"
            )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
