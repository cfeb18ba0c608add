"""What the pod's network namespace looks like, read over netlink with pyroute2.

Used to decide whether to program IPv6, to find the pod address per family for PodIP mode, and to
warn about excluded interfaces that do not exist (iptables accepts any name, so a typo would
silently exclude nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NetInfo", "gather", "read_sysctl"]


@dataclass(frozen=True)
class NetInfo:
    """Interfaces, global addresses per family, default routes and whether IPv6 is enabled."""

    interfaces: tuple[str, ...] = ()
    addresses: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # family → global addrs
    default_route: Mapping[int, bool] = field(default_factory=dict)
    ipv6_enabled: bool = False

    @property
    def has_global_ipv6(self) -> bool:
        return bool(self.addresses.get(6))


def read_sysctl(name: str, root: Path = Path("/proc/sys")) -> str | None:
    """Value of a sysctl such as `net.ipv6.conf.all.disable_ipv6`, None if it does not exist."""
    try:
        return (root / name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def gather() -> NetInfo:
    """Read the current namespace with pyroute2; raises OSError if netlink is unusable."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        addrs: dict[int, list[str]] = {4: [], 6: []}
        for msg in ipr.get_addr():
            text = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
            if not text:
                continue
            addr = ipaddress.ip_address(text)
            if addr.is_loopback or addr.is_link_local or links.get(msg["index"]) == "lo":
                continue
            addrs[addr.version].append(str(addr))
        default = {4: bool(ipr.get_default_routes(family=2)), 6: bool(ipr.get_default_routes(family=10))}
    ipv6_disabled = read_sysctl("net.ipv6.conf.all.disable_ipv6")
    return NetInfo(
        interfaces=tuple(sorted(links.values())),
        addresses={f: tuple(a) for f, a in addrs.items()},
        default_route=default,
        ipv6_enabled=ipv6_disabled == "0",
    )
