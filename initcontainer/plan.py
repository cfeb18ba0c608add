"""The pure planner: Options → the complete redirect rule set, as text for each backend.

No I/O here. The same rule list (FSM's chains, in FSM's order) is rendered as
`iptables-restore --noflush` text per IP family and as one native `nft -f` script, so the backends
cannot drift apart. Every rule lives in FSM-prefixed chains; built-in chains only get jump rules.

Inbound (nat PREROUTING → FSM_PROXY_INBOUND):
  excluded interfaces, excluded inbound ports, bypass ports (15010, 15901-15904) → RETURN;
  everything else → FSM_PROXY_IN_REDIRECT (REDIRECT to the inbound port, 15003).
Outbound (nat OUTPUT → FSM_PROXY_OUTBOUND):
  [PodIP mode] proxy → 127.0.0.1 on lo → DNAT to the pod IP;
  proxy → lo but not 127.0.0.1 → FSM_PROXY_IN_REDIRECT (app calling itself through its service);
  others → lo, proxy UID, 127.0.0.1 → RETURN; excluded interfaces, CIDRs, ports → RETURN;
  inclusion list → only those CIDRs → FSM_PROXY_OUT_REDIRECT, else RETURN;
  no inclusion list → FSM_PROXY_OUT_REDIRECT (admin port 15000 accepted, rest REDIRECT to 15001).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .options import IPNetwork, Options

__all__ = [
    "CHAINS",
    "JUMPS",
    "NFT_TABLE",
    "PROXY_ADMIN_PORT",
    "Plan",
    "iptables_cleanup_text",
    "iptables_restore_text",
    "iptables_rules",
    "nft_cleanup_script",
    "nft_script",
    "plan",
]

INBOUND = "FSM_PROXY_INBOUND"
IN_REDIRECT = "FSM_PROXY_IN_REDIRECT"
OUTBOUND = "FSM_PROXY_OUTBOUND"
OUT_REDIRECT = "FSM_PROXY_OUT_REDIRECT"
CHAINS = (INBOUND, IN_REDIRECT, OUTBOUND, OUT_REDIRECT)
NFT_TABLE = "fsm_proxy"  # native nftables: table inet fsm_proxy, owned entirely by fsm-init
PROXY_ADMIN_PORT = 15000
MULTIPORT_MAX = 15  # xt_multiport takes at most 15 ports per rule

LOOPBACK = {4: "127.0.0.1", 6: "::1"}
# (built-in chain, FSM chain) jump rules; the only rules fsm-init puts in built-in chains.
JUMPS = (("PREROUTING", INBOUND), ("OUTPUT", OUTBOUND))


@dataclass(frozen=True)
class Plan:
    """The rendered rule set: restore text per family, nft script, and what the texts cover."""

    families: tuple[int, ...]
    inbound_only: bool
    iptables: Mapping[int, str] = field(default_factory=dict)  # family → iptables-restore text
    nft: str = ""


# ---------------------------------------------------------------- the rule list (iptables syntax)


def _family_nets(nets: Iterable[IPNetwork], family: int) -> list[IPNetwork]:
    return [n for n in nets if n.version == family]


def _chunks(ports: Sequence[int]) -> list[str]:
    return [
        ",".join(str(p) for p in ports[i : i + MULTIPORT_MAX]) for i in range(0, len(ports), MULTIPORT_MAX)
    ]


def _port_returns(chain: str, ports: Sequence[int]) -> list[str]:
    if len(ports) == 1:
        return [f"-A {chain} -p tcp -m tcp --dport {ports[0]} -j RETURN"]
    return [f"-A {chain} -p tcp -m multiport --dports {group} -j RETURN" for group in _chunks(ports)]


def iptables_rules(
    opts: Options, family: int, *, pod_ip: str | None = None, inbound_only: bool = False
) -> list[str]:
    """Rules for the nat table of one family (4 or 6), in order, in iptables-save syntax."""
    uid = opts.proxy_uid
    lo = LOOPBACK[family]
    host = "/32" if family == 4 else "/128"
    rules = [
        f"-A PREROUTING -p tcp -j {INBOUND}",
        *(f"-A {INBOUND} -i {iface} -j RETURN" for iface in opts.network_interface_exclusions),
        *_port_returns(INBOUND, opts.inbound_port_exclusions),
        *(f"-A {INBOUND} -p tcp -m tcp --dport {port} -j RETURN" for port in opts.bypass_ports),
        f"-A {INBOUND} -p tcp -j {IN_REDIRECT}",
        f"-A {IN_REDIRECT} -p tcp -j REDIRECT --to-ports {opts.inbound_port}",
    ]
    if inbound_only:
        return rules
    rules.append(f"-A OUTPUT -p tcp -j {OUTBOUND}")
    if opts.local_proxy_mode == "PodIP" and pod_ip is not None:
        rules.append(
            f"-A {OUTBOUND} -d {lo}{host} -o lo -p tcp -m owner --uid-owner {uid} -j DNAT --to-destination {pod_ip}"
        )
    rules += [
        f"-A {OUTBOUND} ! -d {lo}{host} -o lo -m owner --uid-owner {uid} -j {IN_REDIRECT}",
        f"-A {OUTBOUND} -o lo -m owner ! --uid-owner {uid} -j RETURN",
        f"-A {OUTBOUND} -m owner --uid-owner {uid} -j RETURN",
        f"-A {OUTBOUND} -d {lo}{host} -j RETURN",
        *(f"-A {OUTBOUND} -o {iface} -j RETURN" for iface in opts.network_interface_exclusions),
        *(
            f"-A {OUTBOUND} -d {net} -j RETURN"
            for net in _family_nets(opts.outbound_ip_range_exclusions, family)
        ),
        *_port_returns(OUTBOUND, opts.outbound_port_exclusions),
    ]
    if opts.outbound_ip_range_inclusions:
        includes = _family_nets(opts.outbound_ip_range_inclusions, family)
        rules += [f"-A {OUTBOUND} -d {net} -j {OUT_REDIRECT}" for net in includes]
        rules.append(f"-A {OUTBOUND} -j RETURN")
    else:
        rules.append(f"-A {OUTBOUND} -j {OUT_REDIRECT}")
    rules += [
        f"-A {OUT_REDIRECT} -p tcp -m tcp --dport {PROXY_ADMIN_PORT} -j ACCEPT",
        f"-A {OUT_REDIRECT} -p tcp -j REDIRECT --to-ports {opts.outbound_port}",
    ]
    return rules


def _our_chains(inbound_only: bool) -> tuple[str, ...]:
    return (INBOUND, IN_REDIRECT) if inbound_only else CHAINS


def existing_jumps(save_text: str) -> list[str]:
    """Jump rules into FSM chains found in built-in chains of an `iptables-save -t nat` dump."""
    builtin = {b for b, _ in JUMPS}
    found = []
    for line in save_text.splitlines():
        parts = line.split()
        if (
            len(parts) >= 4
            and parts[0] == "-A"
            and parts[1] in builtin
            and parts[-2] == "-j"
            and parts[-1] in CHAINS
        ):
            found.append(line.strip())
    return found


def existing_chains(save_text: str) -> list[str]:
    """FSM chains declared in an `iptables-save -t nat` dump."""
    return [
        line[1:].split()[0]
        for line in save_text.splitlines()
        if line.startswith(":") and line[1:].split()[0] in CHAINS
    ]


def iptables_restore_text(
    opts: Options,
    family: int,
    *,
    pod_ip: str | None = None,
    inbound_only: bool = False,
    current: str = "",
) -> str:
    """`iptables-restore --noflush` text: (re)declare and so flush our chains, drop the jumps that
    `current` (an `iptables-save -t nat` dump) already holds, then write every rule. Running it
    twice leaves the same rules because declaring a chain in --noflush mode flushes it."""
    lines = ["# fsm-init: FSM sidecar traffic redirection", "*nat"]
    lines += [f":{chain} - [0:0]" for chain in _our_chains(inbound_only)]
    lines += ["-D" + jump[2:] for jump in existing_jumps(current)]
    lines += iptables_rules(opts, family, pod_ip=pod_ip, inbound_only=inbound_only)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def iptables_cleanup_text(current: str = "") -> str:
    """Restore text removing all fsm-init added: jumps found in `current`, then our chains."""
    lines = ["# fsm-init cleanup", "*nat"]
    lines += [f":{chain} - [0:0]" for chain in CHAINS]
    lines += ["-D" + jump[2:] for jump in existing_jumps(current)]
    lines += [f"-X {chain}" for chain in CHAINS]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- native nftables


def _nft_iface(name: str) -> str:
    return '"' + (name[:-1] + "*" if name.endswith("+") else name) + '"'


def _nft_ports(ports: Sequence[int]) -> str:
    if len(ports) == 1:
        return str(ports[0])
    return "{ " + ", ".join(str(p) for p in ports) + " }"


def _nft_nets(nets: Sequence[IPNetwork]) -> str:
    if len(nets) == 1:
        return str(nets[0])
    return "{ " + ", ".join(str(n) for n in nets) + " }"


def _nft_chain(name: str, rules: list[str], hook: str | None = None, priority: str = "") -> list[str]:
    out = [f"\tchain {name} {{"]
    if hook:
        out.append(f"\t\ttype nat hook {hook} priority {priority}; policy accept;")
    out += [f"\t\t{rule}" for rule in rules]
    out.append("\t}")
    return out


def nft_script(
    opts: Options,
    families: Sequence[int] = (4, 6),
    *,
    pod_ips: Mapping[int, str] | None = None,
    inbound_only: bool = False,
) -> str:
    """One `nft -f` script replacing `table inet fsm_proxy` atomically (create, delete, recreate)."""
    pod_ips = pod_ips or {}
    uid = opts.proxy_uid
    skip = [f"meta nfproto {'ipv6' if f == 6 else 'ipv4'} return" for f in (4, 6) if f not in families]
    inbound = [*skip]
    inbound += [f"iifname {_nft_iface(i)} return" for i in opts.network_interface_exclusions]
    if opts.inbound_port_exclusions:
        inbound.append(f"tcp dport {_nft_ports(opts.inbound_port_exclusions)} return")
    if opts.bypass_ports:
        inbound.append(f"tcp dport {_nft_ports(opts.bypass_ports)} return")
    inbound.append(f"jump {IN_REDIRECT}")
    body = [f"table inet {NFT_TABLE} {{"]
    body += _nft_chain("PREROUTING", [f"meta l4proto tcp jump {INBOUND}"], "prerouting", "dstnat")
    body += _nft_chain(INBOUND, inbound)
    body += _nft_chain(IN_REDIRECT, [f"meta l4proto tcp redirect to :{opts.inbound_port}"])
    if not inbound_only:
        body += _nft_chain("OUTPUT", [f"meta l4proto tcp jump {OUTBOUND}"], "output", "-100")
        body += _nft_chain(OUTBOUND, _nft_outbound(opts, families, pod_ips, skip, uid))
        body += _nft_chain(
            OUT_REDIRECT,
            [f"tcp dport {PROXY_ADMIN_PORT} accept", f"meta l4proto tcp redirect to :{opts.outbound_port}"],
        )
    body.append("}")
    header = [
        "# fsm-init: FSM sidecar traffic redirection (native nftables)",
        f"table inet {NFT_TABLE}",
        f"delete table inet {NFT_TABLE}",
    ]
    return "\n".join(header + body) + "\n"


def _nft_outbound(
    opts: Options, families: Sequence[int], pod_ips: Mapping[int, str], skip: list[str], uid: int
) -> list[str]:
    rules = [*skip]
    fams = [f for f in (4, 6) if f in families]
    if opts.local_proxy_mode == "PodIP":
        for f in fams:
            if f in pod_ips:
                ip = "ip" if f == 4 else "ip6"
                rules.append(
                    f'oifname "lo" {ip} daddr {LOOPBACK[f]} meta skuid {uid} dnat {ip} to {pod_ips[f]}'
                )
    for f in fams:
        ip = "ip" if f == 4 else "ip6"
        rules.append(f'oifname "lo" {ip} daddr != {LOOPBACK[f]} meta skuid {uid} jump {IN_REDIRECT}')
    rules += [
        f'oifname "lo" meta skuid != {uid} return',
        f"meta skuid {uid} return",
    ]
    for f in fams:
        ip = "ip" if f == 4 else "ip6"
        rules.append(f"{ip} daddr {LOOPBACK[f]} return")
    rules += [f"oifname {_nft_iface(i)} return" for i in opts.network_interface_exclusions]
    for f in fams:
        ip = "ip" if f == 4 else "ip6"
        nets = _family_nets(opts.outbound_ip_range_exclusions, f)
        if nets:
            rules.append(f"{ip} daddr {_nft_nets(nets)} return")
    if opts.outbound_port_exclusions:
        rules.append(f"tcp dport {_nft_ports(opts.outbound_port_exclusions)} return")
    if opts.outbound_ip_range_inclusions:
        for f in fams:
            ip = "ip" if f == 4 else "ip6"
            nets = _family_nets(opts.outbound_ip_range_inclusions, f)
            if nets:
                rules.append(f"{ip} daddr {_nft_nets(nets)} jump {OUT_REDIRECT}")
        rules.append("return")
    else:
        rules.append(f"jump {OUT_REDIRECT}")
    return rules


def nft_cleanup_script() -> str:
    """Remove the fsm-init table whether or not it exists (create-then-delete, one transaction)."""
    return f"table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n"


# ---------------------------------------------------------------- the whole plan


def pod_ips_by_family(opts: Options, extra: Iterable[str] = ()) -> dict[int, str]:
    """The pod's address per family: POD_IP first, then the detected addresses, first one wins."""
    found: dict[int, str] = {}
    for text in [*([opts.pod_ip] if opts.pod_ip else []), *extra]:
        addr = ipaddress.ip_address(text)
        found.setdefault(addr.version, str(addr))
    return found


def plan(
    opts: Options,
    *,
    families: Sequence[int] = (4, 6),
    pod_ips: Mapping[int, str] | None = None,
    inbound_only: bool = False,
    current: Mapping[int, str] | None = None,
) -> Plan:
    """Render every backend's text for `families`. `current` maps family → `iptables-save -t nat`
    dump so existing jumps are replaced rather than duplicated (empty for a fresh pod)."""
    pod_ips = dict(pod_ips) if pod_ips is not None else pod_ips_by_family(opts)
    current = current or {}
    fams = tuple(f for f in (4, 6) if f in families)
    texts = {
        f: iptables_restore_text(
            opts, f, pod_ip=pod_ips.get(f), inbound_only=inbound_only, current=current.get(f, "")
        )
        for f in fams
    }
    return Plan(
        families=fams,
        inbound_only=inbound_only,
        iptables=texts,
        nft=nft_script(opts, fams, pod_ips=pod_ips, inbound_only=inbound_only),
    )
