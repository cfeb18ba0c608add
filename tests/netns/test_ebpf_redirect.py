"""eBPF redirection on the real kernel: `fsm-init --mode ebpf` in a network namespace + cgroup v2 dir.

Every program goes through this kernel's verifier; traffic is checked end to end with a UID-1500
test proxy that reads SO_ORIGINAL_DST (answered by our cgroup/getsockopt program).
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ebpf_helpers as H

from ebpf import plan as ebpf_plan
from ebpf.headers import installed_headers
from ebpf.plan import pin_dir
from ebpf.redirect import read_stats
from initcontainer.options import Options

pytestmark = pytest.mark.netns

APP_PORT = 8080  # a service port on the peer
EXCLUDED_PORT = 8081
INBOUND_APP_PORT = 9080


@pytest.fixture(scope="module")
def env_ok() -> None:
    problem = H.environment_problem()
    if problem:
        pytest.fail(problem)


@pytest.fixture()
def pod(env_ok: None, tmp_path: Path) -> Iterator[H.Pod]:
    with H.make_pod("e") as p:
        H.sh("ip", "-n", p.ns, "link", "set", "lo", "up")
        p.start("server", str(APP_PORT), str(EXCLUDED_PORT), ns=p.peer, in_cgroup=False)
        # The sidecar lives in the pod cgroup, as UID 1500, like the real one.
        p.start("proxy", "15001", "15003", uid=H.PROXY_UID)
        yield p


def _init(p: H.Pod, *extra: str, headers_cache: Path | None = None) -> str:
    env = dict(os.environ)
    if headers_cache is not None:
        env["FSM_BPF_HEADER_CACHE"] = str(headers_cache)
        env["FSM_BPF_HEADERS"] = "stub"
        env.pop("BCC_KERNEL_SOURCE", None)
    res = H.fsm_init(
        "--mode", "ebpf", "--cgroup", str(p.cgroup), "--pod-ip", p.pod_ip, *extra, ns=p.ns, env=env
    )
    if res.returncode != 0:
        pytest.fail(f"fsm-init --mode ebpf failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res.stdout + res.stderr


def _pins(p: H.Pod) -> Path:
    return Path(pin_dir(os.stat(p.cgroup).st_ino))


def test_every_feature_combination_passes_the_verifier(env_ok: None) -> None:
    from ebpf import loader

    for ipv6, skmsg in itertools.product((False, True), (False, True)):
        loaded = loader.load(ebpf_plan.plan(Options(mode="ebpf", ipv6=ipv6), skmsg=skmsg))
        try:
            assert set(loaded.functions) == {prog.name for prog in loaded.plan.programs}
        finally:
            loaded.bpf.cleanup()


def test_outbound_is_redirected_with_original_destination(pod: H.Pod) -> None:
    assert pod.client(pod.peer_ip, APP_PORT).startswith("remote"), "direct before fsm-init"
    _init(pod)
    assert pod.client(pod.peer_ip, APP_PORT) == f"proxy 15001 orig={pod.peer_ip}:{APP_PORT}"
    stats = read_stats(_pins(pod))
    assert stats["redirect4"] >= 1 and stats["origin_answered"] >= 1, stats


def test_proxy_uid_and_processes_outside_the_cgroup_go_direct(pod: H.Pod) -> None:
    _init(pod)
    assert pod.client(pod.peer_ip, APP_PORT, uid=H.PROXY_UID) == f"remote {APP_PORT}"
    assert pod.client(pod.peer_ip, APP_PORT, in_cgroup=False) == f"remote {APP_PORT}"
    assert pod.client(pod.peer_ip, APP_PORT).startswith("proxy 15001")


def test_excluded_ports_and_cidrs_go_direct(pod: H.Pod) -> None:
    other = f"10.214.{pod.subnet}.2"
    _init(
        pod,
        "--outbound-port-exclusion-list",
        str(EXCLUDED_PORT),
        "--outbound-ip-range-exclusion-list",
        f"10.214.{pod.subnet}.0/24",
    )
    assert pod.client(pod.peer_ip, EXCLUDED_PORT) == f"remote {EXCLUDED_PORT}"
    assert pod.client(other, APP_PORT) == f"remote {APP_PORT}"
    assert pod.client(pod.peer_ip, APP_PORT) == f"proxy 15001 orig={pod.peer_ip}:{APP_PORT}"


def test_inclusion_list_redirects_only_listed_cidrs(pod: H.Pod) -> None:
    other = f"10.214.{pod.subnet}.2"
    _init(pod, "--outbound-ip-range-inclusion-list", f"10.214.{pod.subnet}.0/24")
    assert pod.client(other, APP_PORT) == f"proxy 15001 orig={other}:{APP_PORT}"
    assert pod.client(pod.peer_ip, APP_PORT) == f"remote {APP_PORT}"


def test_inbound_is_intercepted(pod: H.Pod) -> None:
    _init(pod)
    # A client in the peer namespace (another host) calls the pod: nat PREROUTING → 15003.
    out = pod.client(pod.pod_ip, INBOUND_APP_PORT, ns=pod.peer)
    assert out == f"proxy 15003 orig={pod.pod_ip}:{INBOUND_APP_PORT}"


def test_proxy_calling_the_pod_ip_reaches_the_inbound_port(pod: H.Pod) -> None:
    _init(pod)
    out = pod.client(pod.pod_ip, INBOUND_APP_PORT, uid=H.PROXY_UID)
    assert out == f"proxy 15003 orig={pod.pod_ip}:{INBOUND_APP_PORT}"


def test_skmsg_carries_request_response(pod: H.Pod) -> None:
    _init(pod)
    before = read_stats(_pins(pod))
    out = pod.client(pod.peer_ip, APP_PORT, rounds=20, size=100)
    assert out.splitlines() == [f"proxy 15001 orig={pod.peer_ip}:{APP_PORT}", "rr 20"]
    after = read_stats(_pins(pod))
    assert after["sockhash_insert"] - before["sockhash_insert"] >= 2, after
    # 20 requests from the app and 20 replies from the proxy (+ the greeting) went through sk_msg.
    assert after["skmsg_msgs"] - before["skmsg_msgs"] >= 40, after
    assert after["skmsg_bytes"] - before["skmsg_bytes"] >= 4000, after


def test_cleanup_restores_direct_traffic(pod: H.Pod) -> None:
    _init(pod)
    assert pod.client(pod.peer_ip, APP_PORT).startswith("proxy 15001")
    res = H.fsm_init("--mode", "ebpf", "--cgroup", str(pod.cgroup), "--cleanup", ns=pod.ns)
    assert res.returncode == 0, res.stderr
    assert pod.client(pod.peer_ip, APP_PORT) == f"remote {APP_PORT}"
    out = pod.client(pod.pod_ip, INBOUND_APP_PORT, ns=pod.peer)
    assert not out.startswith("proxy"), out
    assert not _pins(pod).exists()


def test_rerun_replaces_instead_of_stacking(pod: H.Pod) -> None:
    _init(pod)
    _init(pod)
    from ebpf.redirect import detach

    detached = detach(pod.cgroup)
    assert len(detached) == 4, detached  # connect4, connect6, sock_ops, getsockopt: once each


def test_without_kernel_headers_the_built_tree_is_used(pod: H.Pod, tmp_path: Path) -> None:
    cache = tmp_path / "hdr"
    out = _init(pod, headers_cache=cache)
    tree = cache / platform.release()
    assert f"headers: built {tree}" in out, out
    assert (tree / "include/linux/kconfig.h").is_file()
    if installed_headers(platform.release()) is None:
        assert "installed" not in out
    assert pod.client(pod.peer_ip, APP_PORT) == f"proxy 15001 orig={pod.peer_ip}:{APP_PORT}"
    out = _init(pod, headers_cache=cache)
    assert f"headers: cached {tree}" in out, out


def test_dry_run_changes_nothing(pod: H.Pod) -> None:
    out = _init(pod, "--dry-run")
    assert "fsm_connect4" in out and str(pod.cgroup) in out
    from ebpf.redirect import detach

    assert detach(pod.cgroup) == []
    assert pod.client(pod.peer_ip, APP_PORT) == f"remote {APP_PORT}"


def test_auto_falls_back_to_iptables_and_says_why(pod: H.Pod, tmp_path: Path) -> None:
    res = H.fsm_init("--mode", "auto", "--cgroup", str(tmp_path), "--pod-ip", pod.pod_ip, ns=pod.ns)
    assert res.returncode == 0, res.stderr
    assert f"ebpf not used: --cgroup {tmp_path}: not inside a cgroup v2 mount" in res.stderr, res.stderr
    # iptables took over the whole redirect: the in-cgroup client still reaches the proxy.
    assert pod.client(pod.peer_ip, APP_PORT) == f"proxy 15001 orig={pod.peer_ip}:{APP_PORT}"
    H.fsm_init("--mode", "auto", "--cleanup", "--cgroup", str(pod.cgroup), ns=pod.ns)


def test_missing_privileges_give_a_clear_error(pod: H.Pod) -> None:
    cmd = [
        *H.nsenter(pod.ns),
        "setpriv",
        "--bounding-set=-sys_admin,-bpf,-net_admin",
        "--inh-caps=-all",
        str(H.ROOT / ".venv/bin/python"),
        "-m",
        "initcontainer",
        "--mode",
        "ebpf",
        "--cgroup",
        str(pod.cgroup),
    ]
    import subprocess

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=H.ROOT)
    assert res.returncode != 0
    assert "missing capabilities CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN)" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_ipv4_mapped_connect_from_an_ipv6_socket_is_redirected(pod: H.Pod) -> None:
    # Java-style: an AF_INET6 socket connecting to ::ffff:a.b.c.d goes through connect6.
    _init(pod)
    assert pod.client(f"::ffff:{pod.peer_ip}", APP_PORT) == f"proxy 15001 orig={pod.peer_ip}:{APP_PORT}"


def test_inbound_failure_rolls_back_the_bpf_programs(pod: H.Pod) -> None:
    # An invalid inbound port exclusion cannot reach the kernel; here we break inbound by making the
    # nat table unusable: no iptables/nft binaries on PATH for fsm-init.
    env = dict(os.environ, PATH="/nonexistent")
    res = H.fsm_init(
        "--mode", "ebpf", "--cgroup", str(pod.cgroup), "--pod-ip", pod.pod_ip, ns=pod.ns, env=env
    )
    assert res.returncode != 0, res.stdout
    from ebpf.redirect import detach

    assert detach(pod.cgroup) == [], "outbound programs must not stay attached when inbound failed"
    assert pod.client(pod.peer_ip, APP_PORT) == f"remote {APP_PORT}"


def test_native_ipv6_is_redirected_when_enabled(pod: H.Pod) -> None:
    assert pod.client(pod.peer_ip6, APP_PORT) == f"remote {APP_PORT}"
    _init(pod, "--ipv6", "true", "--outbound-port-exclusion-list", str(EXCLUDED_PORT))
    assert pod.client(pod.peer_ip6, APP_PORT) == f"proxy 15001 orig=[{pod.peer_ip6}]:{APP_PORT}"
    assert pod.client(pod.peer_ip6, EXCLUDED_PORT) == f"remote {EXCLUDED_PORT}"
    assert pod.client(pod.peer_ip6, APP_PORT, uid=H.PROXY_UID) == f"remote {APP_PORT}"
    out = pod.client(pod.peer_ip6, APP_PORT, rounds=10, size=100)
    assert out.splitlines()[-1] == "rr 10"
    stats = read_stats(_pins(pod))
    assert stats["redirect6"] >= 2 and stats["skmsg_msgs"] >= 20, stats


# ---------------------------------------------------------------- review fixes


def _stub_headers_unwritable() -> dict[str, str]:
    env = dict(os.environ, FSM_BPF_HEADERS="stub", FSM_BPF_HEADER_CACHE="/proc/nope")
    env.pop("BCC_KERNEL_SOURCE", None)
    return env


def test_a_failed_attach_detaches_what_it_attached_and_unpins(pod: H.Pod) -> None:
    from ebpf import loader
    from ebpf import redirect as R

    p = R.plan_for(Options(mode="ebpf", cgroup=str(pod.cgroup), pod_ip=pod.pod_ip))
    loaded = loader.load(p)
    # getsockopt is attached last; give it a connect4 program so the kernel refuses that attach
    # after sk_msg, connect4, connect6 and sockops are already in place.
    loaded.functions["fsm_getsockopt"] = loaded.functions["fsm_connect4"]
    pins = R._pins_for(pod.cgroup) if R._bpffs_ready() else None
    try:
        with pytest.raises(R.EbpfError, match="attaching fsm_getsockopt"):
            R._install(loaded, pod.cgroup, pins)
    finally:
        loaded.bpf.cleanup()
    assert R.detach(pod.cgroup) == [], "no hook may stay attached when a later one failed"
    assert pins is None or not pins.exists()
    assert pod.client(pod.peer_ip, APP_PORT) == f"remote {APP_PORT}"


def test_more_exclusions_than_the_default_map_size(pod: H.Pod) -> None:
    import dataclasses

    from ebpf import loader
    from ebpf import redirect as R

    _init(pod)
    many = [f"10.{200 + i // 256}.{i % 256}.0/24" for i in range(1100)] + [f"10.214.{pod.subnet}.0/24"]
    opts = Options(mode="ebpf", cgroup=str(pod.cgroup), outbound_ip_range_exclusions=())
    import ipaddress

    opts = dataclasses.replace(opts, outbound_ip_range_exclusions=tuple(map(ipaddress.ip_network, many)))
    # Maps too small for the plan: the fill fails before our running programs are touched.
    small = dataclasses.replace(R.plan_for(opts), excl_max=1024)
    loaded = loader.load(small)
    try:
        with pytest.raises(R.EbpfError, match="filling the BPF maps failed"):
            R._install(loaded, pod.cgroup, R._pins_for(pod.cgroup) if R._bpffs_ready() else None)
    finally:
        loaded.bpf.cleanup()
    assert pod.client(pod.peer_ip, APP_PORT).startswith("proxy 15001"), "previous programs must stay"
    # Through the CLI the maps are sized from the options: 1101 CIDRs work.
    _init(pod, "--outbound-ip-range-exclusion-list", ",".join(many))
    assert pod.client(f"10.214.{pod.subnet}.2", APP_PORT) == f"remote {APP_PORT}"
    assert pod.client(pod.peer_ip, APP_PORT) == f"proxy 15001 orig={pod.peer_ip}:{APP_PORT}"


def test_dual_stack_pod_with_ipv4_pod_ip_intercepts_ipv6(pod: H.Pod) -> None:
    _init(pod)  # --pod-ip is IPv4, no --ipv6: the pod's global IPv6 address turns IPv6 on
    assert pod.client(pod.peer_ip6, APP_PORT) == f"proxy 15001 orig=[{pod.peer_ip6}]:{APP_PORT}"


def test_app_calling_its_own_pod_ip_is_not_proxied(pod: H.Pod) -> None:
    pod.start("server", str(INBOUND_APP_PORT))  # the app, in the pod, listening on all addresses
    _init(pod)
    assert pod.client(pod.pod_ip, INBOUND_APP_PORT) == f"remote {INBOUND_APP_PORT}"
    assert pod.client(pod.pod_ip6, INBOUND_APP_PORT) == f"remote {INBOUND_APP_PORT}"
    assert pod.client(pod.peer_ip, APP_PORT).startswith("proxy 15001")


def test_auto_falls_back_when_the_header_tree_cannot_be_built(pod: H.Pod) -> None:
    res = H.fsm_init(
        "--mode", "auto", "--dry-run", "--cgroup", str(pod.cgroup), ns=pod.ns, env=_stub_headers_unwritable()
    )
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "auto: ebpf not used: cannot prepare a kernel header tree for BCC" in res.stderr, res.stderr


def test_cleanup_detaches_without_compiling_and_fails_loudly(pod: H.Pod, tmp_path: Path) -> None:
    from ebpf.redirect import detach

    _init(pod)
    # auto cleanup must detach even though nothing could be compiled here now.
    res = H.fsm_init(
        "--mode", "auto", "--cleanup", "--cgroup", str(pod.cgroup), ns=pod.ns, env=_stub_headers_unwritable()
    )
    assert res.returncode == 0, res.stderr
    assert detach(pod.cgroup) == [] and not _pins(pod).exists()
    assert pod.client(pod.peer_ip, APP_PORT) == f"remote {APP_PORT}"
    gone = tmp_path / "no-such-cgroup"
    res = H.fsm_init("--mode", "ebpf", "--cleanup", "--cgroup", str(gone), ns=pod.ns)
    assert res.returncode == 1, res.stderr
    assert "cleanup incomplete" in res.stderr and str(gone) in res.stderr, res.stderr


def test_pins_of_deleted_cgroups_are_removed(pod: H.Pod) -> None:
    from ebpf.redirect import cleanup as ebpf_cleanup

    other = pod.cgroup.parent / f"{pod.cgroup.name}-gone"
    other.mkdir()
    stale = Path(pin_dir(os.stat(other).st_ino))
    try:
        res = H.fsm_init("--mode", "ebpf", "--cgroup", str(other), "--pod-ip", pod.pod_ip, ns=pod.ns)
        assert res.returncode == 0, res.stderr
        assert (stale / "fsm_settings").exists()
        other.rmdir()  # the pod is deleted without --cleanup
        assert stale.exists()
        res = H.fsm_init("--mode", "ebpf", "--cleanup", "--cgroup", str(pod.cgroup), ns=pod.ns)
        assert res.returncode == 0, res.stderr
        assert not stale.exists(), res.stderr
        assert f"removed pins of deleted cgroups: {stale}" in res.stderr
    finally:
        if other.exists():
            with __import__("contextlib").suppress(Exception):
                ebpf_cleanup(Options(mode="ebpf", cgroup=str(other)))
            other.rmdir()
        if stale.exists():
            for entry in stale.iterdir():
                entry.unlink()
            stale.rmdir()
