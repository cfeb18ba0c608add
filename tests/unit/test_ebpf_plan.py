"""Pure tests of eBPF mode's planning: Options → map contents, flags, programs, dry-run text."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from ebpf import plan as P
from ebpf.redirect import missing_privilege, unavailable_reason
from initcontainer.options import Options, parse_options

BPF_DIR = Path(__file__).resolve().parents[2] / "ebpf" / "bpf"


def _opts(*argv: str) -> Options:
    return parse_options(["--mode", "ebpf", *argv], env={})


def test_defaults_exclude_only_the_admin_port() -> None:
    p = P.plan(_opts())
    assert p.outbound_port == 15001 and p.inbound_port == 15003 and p.proxy_uid == 1500
    assert p.outbound_port_exclusions == (15000,)
    assert p.flags == 0 and not p.ipv6 and p.skmsg
    assert [prog.name for prog in p.programs] == [
        "fsm_connect4",
        "fsm_connect6",
        "fsm_sockops",
        "fsm_getsockopt",
        "fsm_redir",
    ]
    assert p.cflags == ("-DENABLE_SKMSG",)


def test_exclusions_and_inclusions_become_lpm_entries_per_family() -> None:
    p = P.plan(
        _opts(
            "--outbound-port-exclusion-list",
            "8081,15000,8081",
            "--outbound-ip-range-exclusion-list",
            "10.0.0.0/8,192.168.1.7/32,fd00::/8",
            "--outbound-ip-range-inclusion-list",
            "172.16.0.0/12",
        )
    )
    assert p.outbound_port_exclusions == (8081, 15000)
    assert p.exclude4 == ((8, bytes([10, 0, 0, 0])), (32, bytes([192, 168, 1, 7])))
    assert p.exclude6 == ((8, ipaddress.ip_address("fd00::").packed),)
    assert p.include4 == ((12, bytes([172, 16, 0, 0])),) and p.include6 == ()
    # iptables semantics: with any inclusion list, the family without listed ranges is not intercepted
    assert p.flags & P.FLAG_INCLUDE4 and p.flags & P.FLAG_INCLUDE6
    assert p.ipv6 and p.flags & P.FLAG_IPV6  # an IPv6 CIDR implies IPv6 redirection
    assert set(p.cflags) == {"-DENABLE_IPV6", "-DENABLE_SKMSG"}


def test_pod_ip_and_ipv6_switch() -> None:
    p = P.plan(_opts("--pod-ip", "10.1.2.3", "--ipv6", "false"))
    assert p.pod_ip4 == bytes([10, 1, 2, 3]) and p.pod_ip6 is None and not p.ipv6
    p6 = P.plan(_opts("--pod-ip", "fd00::5"))
    assert p6.pod_ip6 == ipaddress.ip_address("fd00::5").packed and p6.ipv6


def test_without_skmsg_the_sk_msg_program_is_dropped() -> None:
    p = P.plan(_opts(), skmsg=False)
    assert "fsm_redir" not in [prog.name for prog in p.programs] and p.cflags == ()


def test_plans_are_hashable_for_the_load_cache() -> None:
    assert hash(P.plan(_opts())) == hash(P.plan(_opts()))


def test_describe_names_cgroup_programs_and_lists() -> None:
    text = P.describe(P.plan(_opts("--outbound-ip-range-exclusion-list", "10.0.0.0/8")), "/cg/pod", "/pins")
    assert "cgroup /cg/pod" in text and "fsm_getsockopt(getsockopt)" in text
    assert "v4 10.0.0.0/8" in text and "maps pinned under /pins" in text


def test_pin_dir_is_per_cgroup() -> None:
    assert P.pin_dir(4242) == "/sys/fs/bpf/fsm/cg4242"


def test_stat_names_mirror_the_c_header() -> None:
    header = (BPF_DIR / "lib" / "common.h").read_text()
    found = dict(
        (int(idx), name.lower()) for name, idx in re.findall(r"#define FSM_STAT_(\w+) (\d+)", header)
    )
    found.pop(max(found))  # FSM_STAT_MAX
    assert tuple(found[i] for i in sorted(found)) == P.STAT_NAMES


def test_flags_mirror_the_c_header() -> None:
    header = (BPF_DIR / "lib" / "common.h").read_text()
    assert "FSM_F_INCLUDE4 (1U << 0)" in header and P.FLAG_INCLUDE4 == 1
    assert "FSM_F_INCLUDE6 (1U << 1)" in header and P.FLAG_INCLUDE6 == 2
    assert "FSM_F_IPV6 (1U << 2)" in header and P.FLAG_IPV6 == 4


def test_every_map_is_prefixed_and_every_entry_file_exists() -> None:
    maps = re.findall(
        r"BPF_\w+\((?:\"\w+\", [^,]+, [^,]+, )?(\w+),", (BPF_DIR / "lib" / "maps.h").read_text()
    )
    assert maps and all(name.startswith("fsm_") for name in maps), maps
    for prog in P.PROGRAMS:
        assert f"int {prog.name}(" in (BPF_DIR / prog.source).read_text()


def test_missing_privilege_reads_capeff() -> None:
    def status(*caps: int) -> str:
        return f"Name:\tx\nCapEff:\t{sum(1 << c for c in caps):016x}\n"

    assert missing_privilege(status(21)) is None  # CAP_SYS_ADMIN
    assert missing_privilege(status(39, 12)) is None  # CAP_BPF + CAP_NET_ADMIN
    assert "CAP_NET_ADMIN" in (missing_privilege(status(39)) or "")
    assert "CAP_BPF and CAP_NET_ADMIN" in (missing_privilege(status()) or "")


def test_an_ipv6_only_inclusion_list_stops_ipv4_interception_too() -> None:
    # iptables: an IPv6-only inclusion list leaves the IPv4 chain with no OUT_REDIRECT jump at all.
    p = P.plan(_opts("--outbound-ip-range-inclusion-list", "fd00:10::/64"))
    assert p.include4 == () and p.include6 == ((64, ipaddress.ip_address("fd00:10::").packed),)
    assert p.flags & P.FLAG_INCLUDE4 and p.flags & P.FLAG_INCLUDE6
    assert not P.plan(_opts()).flags & (P.FLAG_INCLUDE4 | P.FLAG_INCLUDE6)


def test_ipv6_follows_the_detected_families_of_a_dual_stack_pod() -> None:
    # IPv4 POD_IP, but the pod has a global IPv6 address (families_for says (4, 6)).
    opts = _opts("--pod-ip", "10.1.2.3")
    assert not P.plan(opts, families=(4,)).ipv6
    p = P.plan(opts, families=(4, 6), pod_ips={4: "10.1.2.3", 6: "fd00::7"})
    assert p.ipv6 and p.flags & P.FLAG_IPV6 and "-DENABLE_IPV6" in p.cflags
    assert p.pod_ip4 == bytes([10, 1, 2, 3]) and p.pod_ip6 == ipaddress.ip_address("fd00::7").packed
    assert not P.plan(_opts("--pod-ip", "10.1.2.3", "--ipv6", "false"), families=(4, 6)).ipv6


def test_maps_are_sized_for_long_lists() -> None:
    assert P.plan(_opts()).excl_max == P.EXCL_MAX_DEFAULT == 1024
    assert not any(f.startswith("-DFSM_EXCL_MAX") for f in P.plan(_opts()).cflags)
    many = ",".join(f"10.{i // 256}.{i % 256}.0/24" for i in range(1500))
    p = P.plan(_opts("--outbound-ip-range-exclusion-list", many))
    assert len(p.exclude4) == 1500 and p.excl_max == 1500 and "-DFSM_EXCL_MAX=1500" in p.cflags
    assert "#define FSM_EXCL_MAX 1024" in (BPF_DIR / "lib" / "maps.h").read_text()


def test_auto_with_podip_skips_ebpf_with_a_reason() -> None:
    # --mode auto then falls back to iptables/nftables, which implement PodIP.
    opts = parse_options(["--mode", "auto", "--local-proxy-mode", "PodIP"], env={})
    assert "PodIP is not supported in eBPF mode" in (unavailable_reason(opts) or "")
