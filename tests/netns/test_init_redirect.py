"""fsm-init against the real kernel: real packets through a real proxy, per backend.

Pod and client namespaces joined by a veth pair; the test proxy runs as UID 1500 in the pod and
answers `via-proxy <port> orig=<original destination>` before forwarding, so every assertion reads
which path a connection took. Fails (never skips) when root, iproute2 or netfilter are missing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import initns
import pytest
from initns import Topology, fsm_init, in_ns, request

pytestmark = pytest.mark.netns

BACKENDS = ["iptables-legacy", "iptables-nft", "nftables"]
FAMILIES = [4, 6]
LOOP = {4: "127.0.0.1", 6: "::1"}


@dataclass
class Env:
    topo: Topology
    state: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)

    def default_args(self) -> list[str]:
        t = self.topo
        return [
            "--inbound-port-exclusion-list",
            "8081",
            "--outbound-port-exclusion-list",
            "9091",
            "--outbound-ip-range-exclusion-list",
            f"{t.other4_cidr},{t.other6_cidr}",
        ]

    def ensure(self, mode: str, args: list[str] | None = None) -> None:
        """Apply `mode` + args unless exactly that is already in place (saves CLI runs)."""
        args = self.default_args() if args is None else args
        want = (mode, *args)
        if self.state == want:
            return
        if self.state is not None and self.state[0] != mode:
            self.cleanup_all()
        res = fsm_init(self.topo.pod, "--mode", mode, *args, check=False)
        assert res.returncode == 0, f"fsm-init --mode {mode} failed: {res.stderr}"
        self.state = want

    def cleanup_all(self) -> None:
        for mode in ("iptables-legacy", "iptables-nft", "nftables"):
            fsm_init(self.topo.pod, "--cleanup", "--mode", mode)
        self.state = None


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    problem = initns.environment_problem()
    if problem:
        pytest.fail(f"cannot run the fsm-init netns tests: {problem}")
    topo = initns.make_topology()
    servers = initns.Servers()
    proxy = None
    try:
        for host in ("0.0.0.0", "::"):
            for port in (8080, 8081, 15010, 15901):
                servers.listen(topo.pod, host, port, "app")
        for host in (topo.pod4, topo.pod6):
            servers.listen(topo.pod, host, 8082, "app-podip")
        for host in (topo.client4, topo.other4, topo.client6, topo.other6):
            for port in (9090, 9091):
                servers.listen(topo.client, host, port, "upstream")
        servers.start()
        proxy = initns.Proxy(topo.pod)
        yield Env(topo)
    finally:
        if proxy:
            proxy.stop()
        servers.close()
        initns.destroy_topology(topo)


# ---------------------------------------------------------------- expectations


def direct_in(t: Topology, fam: int, port: int) -> list[str]:
    return [f"server app local={t.pod_ip(fam)}:{port} peer={t.client_ip(fam)}"]


def proxied_in(t: Topology, fam: int, port: int) -> list[str]:
    return [
        f"via-proxy 15003 orig={t.pod_ip(fam)}:{port}",
        f"server app local={LOOP[fam]}:{port} peer={LOOP[fam]}",
    ]


def direct_out(t: Topology, fam: int, host: str, port: int) -> list[str]:
    return [f"server upstream local={host}:{port} peer={t.pod_ip(fam)}"]


def proxied_out(t: Topology, fam: int, host: str, port: int) -> list[str]:
    # exactly one proxy hop: the proxy's own upstream connection (UID 1500) is not redirected again
    return [f"via-proxy 15001 orig={host}:{port}", *direct_out(t, fam, host, port)]


def snapshot(t: Topology) -> str:
    """Every nat rule in the pod from all three backends (comments and counters dropped)."""
    parts = []
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"):
        out = in_ns(t.pod, tool, "-t", "nat", check=False).stdout
        parts.append(tool + "\n" + "\n".join(line for line in out.splitlines() if not line.startswith("#")))
    parts.append("nft\n" + in_ns(t.pod, "nft", "list", "table", "inet", "fsm_proxy", check=False).stdout)
    return "\n".join(parts)


def fsm_rules_present(t: Topology) -> bool:
    snap = snapshot(t)
    return "FSM_PROXY" in snap


# ---------------------------------------------------------------- per backend, per family


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("backend", BACKENDS)
class TestRedirect:
    def test_inbound_to_app_is_intercepted_with_original_destination(
        self, env: Env, backend: str, fam: int
    ) -> None:
        env.ensure(backend)
        assert request(env.topo.client, env.topo.pod_ip(fam), 8080) == proxied_in(env.topo, fam, 8080)

    def test_excluded_inbound_port_goes_direct(self, env: Env, backend: str, fam: int) -> None:
        env.ensure(backend)
        assert request(env.topo.client, env.topo.pod_ip(fam), 8081) == direct_in(env.topo, fam, 8081)

    @pytest.mark.parametrize("port", [15010, 15901])
    def test_probe_and_metrics_ports_go_direct(self, env: Env, backend: str, fam: int, port: int) -> None:
        env.ensure(backend)
        assert request(env.topo.client, env.topo.pod_ip(fam), port) == direct_in(env.topo, fam, port)

    def test_outbound_from_app_is_intercepted_and_proxy_upstream_not_looped(
        self, env: Env, backend: str, fam: int
    ) -> None:
        env.ensure(backend)
        t = env.topo
        assert request(t.pod, t.client_ip(fam), 9090) == proxied_out(t, fam, t.client_ip(fam), 9090)

    def test_excluded_outbound_port_goes_direct(self, env: Env, backend: str, fam: int) -> None:
        env.ensure(backend)
        t = env.topo
        assert request(t.pod, t.client_ip(fam), 9091) == direct_out(t, fam, t.client_ip(fam), 9091)

    def test_excluded_outbound_cidr_goes_direct(self, env: Env, backend: str, fam: int) -> None:
        env.ensure(backend)
        t = env.topo
        assert request(t.pod, t.other_ip(fam), 9090) == direct_out(t, fam, t.other_ip(fam), 9090)

    def test_inclusion_list_limits_interception_to_its_ranges(self, env: Env, backend: str, fam: int) -> None:
        t = env.topo
        env.ensure(backend, ["--outbound-ip-range-inclusion-list", f"{t.other4_cidr},{t.other6_cidr}"])
        assert request(t.pod, t.other_ip(fam), 9090) == proxied_out(t, fam, t.other_ip(fam), 9090)
        assert request(t.pod, t.client_ip(fam), 9090) == direct_out(t, fam, t.client_ip(fam), 9090)

    def test_excluded_interface_goes_direct_both_ways(self, env: Env, backend: str, fam: int) -> None:
        t = env.topo
        env.ensure(backend, ["--network-interface-exclusion-list", "p0"])
        assert request(t.client, t.pod_ip(fam), 8080) == direct_in(t, fam, 8080)
        assert request(t.pod, t.client_ip(fam), 9090) == direct_out(t, fam, t.client_ip(fam), 9090)

    def test_podip_mode_proxy_reaches_app_bound_to_pod_ip(self, env: Env, backend: str, fam: int) -> None:
        t = env.topo
        env.ensure(backend, ["--local-proxy-mode", "PodIP", "--pod-ip", t.pod4])
        lines = request(t.client, t.pod_ip(fam), 8082)
        # the proxy dialled loopback; DNAT took it to the app listening only on the pod IP
        assert lines == [
            f"via-proxy 15003 orig={t.pod_ip(fam)}:8082",
            f"server app-podip local={t.pod_ip(fam)}:8082 peer={LOOP[fam]}",
        ]
        # and no sysctl had to be loosened for that
        assert in_ns(t.pod, "sysctl", "-n", "net.ipv4.conf.all.route_localnet").stdout.strip() == "0"


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_run_is_a_noop(env: Env, backend: str) -> None:
    env.ensure(backend)
    before = snapshot(env.topo)
    res = fsm_init(env.topo.pod, "--mode", backend, *env.default_args())
    assert res.returncode == 0
    after = snapshot(env.topo)
    assert after == before
    if backend.startswith("iptables"):
        variant = backend.split("-")[1]
        for tool in (f"iptables-{variant}-save", f"ip6tables-{variant}-save"):
            out = in_ns(env.topo.pod, tool, "-t", "nat").stdout
            assert out.count("-j FSM_PROXY_INBOUND") == 1  # the one PREROUTING jump, not duplicated
            assert out.count("-A PREROUTING") == 1 and out.count("-A OUTPUT") == 1
    else:
        assert in_ns(env.topo.pod, "nft", "list", "tables").stdout.count("fsm_proxy") == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_cleanup_restores_direct_traffic(env: Env, backend: str) -> None:
    t = env.topo
    env.ensure(backend)
    assert request(t.client, t.pod4, 8080) == proxied_in(t, 4, 8080)
    res = fsm_init(t.pod, "--cleanup", "--mode", backend)
    env.state = None
    assert "cleaned up" in res.stdout
    assert not fsm_rules_present(t), snapshot(t)
    for fam in FAMILIES:
        assert request(t.client, t.pod_ip(fam), 8080) == direct_in(t, fam, 8080)
        assert request(t.pod, t.client_ip(fam), 9090) == direct_out(t, fam, t.client_ip(fam), 9090)
    # a second cleanup is harmless
    assert fsm_init(t.pod, "--cleanup", "--mode", backend).returncode == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_dry_run_prints_the_rules_and_changes_nothing(env: Env, backend: str) -> None:
    t = env.topo
    env.cleanup_all()
    before = snapshot(t)
    res = fsm_init(t.pod, "--dry-run", "--mode", backend, *env.default_args())
    assert res.returncode == 0
    assert "FSM_PROXY_IN_REDIRECT" in res.stdout and "15003" in res.stdout
    assert snapshot(t) == before


def test_iptables_mode_prefers_the_backend_that_already_holds_rules(env: Env) -> None:
    t = env.topo
    env.cleanup_all()
    env.ensure("iptables-legacy")
    res = fsm_init(t.pod, "--mode", "iptables", *env.default_args())
    assert "with iptables-legacy" in res.stdout, res.stdout + res.stderr
    assert "FSM_PROXY" not in in_ns(t.pod, "iptables-nft-save", "-t", "nat").stdout
    assert request(t.client, t.pod4, 8080) == proxied_in(t, 4, 8080)


def test_auto_mode_falls_back_with_reasons_and_redirects(env: Env) -> None:
    t = env.topo
    env.cleanup_all()
    res = fsm_init(
        t.pod, "--mode", "auto", "--cgroup", "/nonexistent-fsm-test-cgroup", *env.default_args(), check=False
    )
    env.state = ("auto",)
    assert res.returncode == 0, res.stderr
    if "ebpf" not in res.stdout:
        assert "auto: ebpf not used:" in res.stderr
    assert request(t.client, t.pod4, 8080) == proxied_in(t, 4, 8080)
    env.cleanup_all()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--inbound-port", "70000"),
        ("--outbound-port-exclusion-list", "80,http"),
        ("--outbound-ip-range-exclusion-list", "10.0.0.0/33"),
        ("--network-interface-exclusion-list", "eth0/1"),
        ("--mode", "ipchains"),
        ("--local-proxy-mode", "Sidecar"),
    ],
)
def test_invalid_option_exits_2_naming_it_and_applies_nothing(env: Env, flag: str, value: str) -> None:
    t = env.topo
    env.cleanup_all()
    res = fsm_init(t.pod, flag, value, check=False)
    assert res.returncode == 2
    assert flag in res.stderr and "Traceback" not in res.stderr
    assert not fsm_rules_present(t)


def test_invalid_env_option_names_the_variable(env: Env) -> None:
    res = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            env.topo.pod,
            "env",
            "FSM_INIT_INBOUND_PORT_EXCLUSION_LIST=0",
            *initns.FSM_INIT,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2 and "FSM_INIT_INBOUND_PORT_EXCLUSION_LIST" in res.stderr
    assert not fsm_rules_present(env.topo)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_net_admin_says_so_and_changes_nothing(env: Env, backend: str) -> None:
    t = env.topo
    env.cleanup_all()
    res = in_ns(
        t.pod,
        "setpriv",
        "--bounding-set=-net_admin,-net_raw",
        "--inh-caps=-net_admin,-net_raw",
        *initns.FSM_INIT,
        "--mode",
        backend,
        check=False,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "NET_ADMIN" in res.stderr and "Traceback" not in res.stderr
    assert not fsm_rules_present(t)


@pytest.mark.parametrize("mode", ["iptables", "auto", "iptables-legacy", "nftables"])
def test_cleanup_in_a_fresh_pod_creates_no_tables(env: Env, mode: str) -> None:
    ns = f"fsmfresh{os.getpid() % 100000}"
    initns.sh("ip", "netns", "add", ns)
    try:
        res = fsm_init(ns, "--cleanup", "--mode", mode, check=False)
        assert res.returncode == 0, res.stderr
        for names in ("ip_tables_names", "ip6_tables_names"):
            assert in_ns(ns, "cat", f"/proc/net/{names}").stdout.strip() == "", names
        assert in_ns(ns, "nft", "list", "ruleset").stdout.strip() == ""
    finally:
        initns.sh("ip", "netns", "del", ns, check=False)
