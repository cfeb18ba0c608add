"""The pure part of eBPF mode: Options → what goes into the BPF maps, which programs attach where.

No I/O and no bcc here, so unit tests cover the map-filling logic without a kernel. The loader
(`ebpf/loader.py`) turns an `EbpfPlan` into kernel objects; `describe()` is the dry-run text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from initcontainer.options import IPNetwork, Options

__all__ = [
    "EXCL_MAX_DEFAULT",
    "FLAG_INCLUDE4",
    "FLAG_INCLUDE6",
    "FLAG_IPV6",
    "PROGRAMS",
    "PROXY_ADMIN_PORT",
    "STAT_NAMES",
    "EbpfPlan",
    "Program",
    "describe",
    "pin_dir",
    "plan",
]

# Mirrors ebpf/bpf/lib/common.h.
FLAG_INCLUDE4 = 1 << 0
FLAG_INCLUDE6 = 1 << 1
FLAG_IPV6 = 1 << 2
STAT_NAMES = (
    "redirect4",
    "redirect6",
    "self_inbound",
    "origin_answered",
    "sockhash_insert",
    "skmsg_msgs",
    "skmsg_bytes",
)
PROXY_ADMIN_PORT = 15000  # FSM's OUT_REDIRECT accepts it: the app may talk to the proxy admin port
PIN_ROOT = "/sys/fs/bpf/fsm"
EXCL_MAX_DEFAULT = 1024  # FSM_EXCL_MAX in bpf/lib/maps.h; plans needing more entries size the maps up


@dataclass(frozen=True)
class Program:
    """One BPF entry point: function, source file, BCC program type name, attach point."""

    name: str
    source: str
    prog_type: str  # BPF.<prog_type> in bcc
    attach_type: str  # BPFAttachType.<attach_type> in bcc; bpftool's name in `bpftool_type`
    bpftool_type: str
    target: str  # "cgroup" or "sockhash"


PROGRAMS = (
    Program("fsm_connect4", "connect.c", "CGROUP_SOCK_ADDR", "CGROUP_INET4_CONNECT", "connect4", "cgroup"),
    Program("fsm_connect6", "connect.c", "CGROUP_SOCK_ADDR", "CGROUP_INET6_CONNECT", "connect6", "cgroup"),
    Program("fsm_sockops", "sockops.c", "SOCK_OPS", "CGROUP_SOCK_OPS", "sock_ops", "cgroup"),
    Program("fsm_getsockopt", "getsockopt.c", "CGROUP_SOCKOPT", "CGROUP_GETSOCKOPT", "getsockopt", "cgroup"),
    Program("fsm_redir", "redir.c", "SK_MSG", "SK_MSG_VERDICT", "msg_verdict", "sockhash"),
)


@dataclass(frozen=True)
class EbpfPlan:
    """Everything the loader writes, as plain values (addresses as packed bytes, ports host order)."""

    proxy_uid: int
    outbound_port: int
    inbound_port: int
    pod_ip4: bytes | None
    pod_ip6: bytes | None
    flags: int
    outbound_port_exclusions: tuple[int, ...]
    exclude4: tuple[tuple[int, bytes], ...]  # (prefixlen, 4 address bytes)
    exclude6: tuple[tuple[int, bytes], ...]
    include4: tuple[tuple[int, bytes], ...]
    include6: tuple[tuple[int, bytes], ...]
    ipv6: bool
    skmsg: bool
    programs: tuple[Program, ...]
    excl_max: int = EXCL_MAX_DEFAULT  # max_entries of the exclusion/inclusion maps

    @property
    def cflags(self) -> tuple[str, ...]:
        """Feature switches for the C sources (one compile per combination)."""
        flags = []
        if self.ipv6:
            flags.append("-DENABLE_IPV6")
        if self.skmsg:
            flags.append("-DENABLE_SKMSG")
        if self.excl_max != EXCL_MAX_DEFAULT:
            flags.append(f"-DFSM_EXCL_MAX={self.excl_max}")
        return tuple(flags)


def _lpm(nets: tuple[IPNetwork, ...], version: int) -> tuple[tuple[int, bytes], ...]:
    seen: dict[tuple[int, bytes], None] = {}
    for net in nets:
        if net.version == version:
            seen[(net.prefixlen, net.network_address.packed)] = None
    return tuple(seen)


def _wants_ipv6(opts: Options, families: Sequence[int] | None) -> bool:
    """IPv6 redirection: the families the iptables path would program (`families`, decided by
    initcontainer.redirect.families_for from --ipv6, POD_IP and the pod's addresses), or an IPv6 CIDR
    in the lists. Without `families` (pure callers) --ipv6 / a v6 POD_IP decide."""
    if opts.ipv6 is not None:
        return opts.ipv6
    if families is not None and 6 in families:
        return True
    if opts.pod_ip and ipaddress.ip_address(opts.pod_ip).version == 6:
        return True
    return any(
        n.version == 6 for n in (*opts.outbound_ip_range_exclusions, *opts.outbound_ip_range_inclusions)
    )


def plan(
    opts: Options,
    *,
    skmsg: bool = True,
    families: Sequence[int] | None = None,
    pod_ips: Mapping[int, str] | None = None,
) -> EbpfPlan:
    """Options → EbpfPlan. `skmsg=False` drops the sk_msg fast path (sockops keeps origins only).

    `families` and `pod_ips` (family → address, e.g. the other family's address read over netlink)
    come from the same detection the iptables path uses; without them only the options count."""
    ipv6 = _wants_ipv6(opts, families)
    ips: dict[int, bytes] = {}
    for text in (*(pod_ips or {}).values(), opts.pod_ip):
        if text:
            addr = ipaddress.ip_address(text)
            ips[addr.version] = addr.packed
    pod4, pod6 = ips.get(4), ips.get(6)
    include4 = _lpm(opts.outbound_ip_range_inclusions, 4)
    include6 = _lpm(opts.outbound_ip_range_inclusions, 6)
    # Like iptables: any inclusion list means "only listed CIDRs", per family — a list holding only
    # IPv6 ranges stops IPv4 interception too (and vice versa).
    inclusion = FLAG_INCLUDE4 | FLAG_INCLUDE6 if (include4 or include6) else 0
    flags = inclusion | (FLAG_IPV6 if ipv6 else 0)
    excluded_ports = tuple(dict.fromkeys((*opts.outbound_port_exclusions, PROXY_ADMIN_PORT)))
    programs = tuple(p for p in PROGRAMS if skmsg or p.target != "sockhash")
    exclude4 = _lpm(opts.outbound_ip_range_exclusions, 4)
    exclude6 = _lpm(opts.outbound_ip_range_exclusions, 6)
    needed = max(len(excluded_ports), len(exclude4), len(exclude6), len(include4), len(include6))
    return EbpfPlan(
        proxy_uid=opts.proxy_uid,
        outbound_port=opts.outbound_port,
        inbound_port=opts.inbound_port,
        pod_ip4=pod4,
        pod_ip6=pod6,
        flags=flags,
        outbound_port_exclusions=excluded_ports,
        exclude4=exclude4,
        exclude6=exclude6,
        include4=include4,
        include6=include6,
        ipv6=ipv6,
        skmsg=skmsg,
        programs=programs,
        excl_max=max(EXCL_MAX_DEFAULT, needed),
    )


def pin_dir(cgroup_id: int, root: str = PIN_ROOT) -> str:
    """Per-pod bpffs directory: the pod cgroup's inode number is unique and stable on the node."""
    return f"{root}/cg{cgroup_id}"


def _nets(entries: tuple[tuple[int, bytes], ...]) -> str:
    if not entries:
        return "-"
    return ", ".join(f"{ipaddress.ip_address(addr)}/{plen}" for plen, addr in entries)


def describe(p: EbpfPlan, cgroup: str, pins: str) -> str:
    """Human summary (the dry-run output and the tail of apply's summary)."""
    pod = [str(ipaddress.ip_address(a)) for a in (p.pod_ip4, p.pod_ip6) if a]
    lines = [
        f"ebpf: cgroup {cgroup}",
        "  attach: " + ", ".join(f"{prog.name}({prog.bpftool_type})" for prog in p.programs),
        f"  features: ipv6={'on' if p.ipv6 else 'off'} sk_msg={'on' if p.skmsg else 'off'}",
        f"  outbound -> 127.0.0.1:{p.outbound_port} (proxy uid {p.proxy_uid} and loopback go direct)",
        f"  proxy -> pod IP ({', '.join(pod) or 'unknown'}) -> inbound port {p.inbound_port}",
        "  outbound port exclusions: " + ", ".join(str(x) for x in p.outbound_port_exclusions),
        f"  outbound CIDR exclusions: v4 {_nets(p.exclude4)}; v6 {_nets(p.exclude6)}",
        f"  outbound CIDR inclusions: v4 {_nets(p.include4)}; v6 {_nets(p.include6)}",
        f"  maps pinned under {pins}",
    ]
    return "\n".join(lines)
