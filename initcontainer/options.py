"""fsm-init options: flags and environment in, one validated frozen `Options` out.

The webhook passes exclusions as flags (or env vars on the init container); every value is validated
here so a typo fails the pod with exit code 2 and a message naming the option, before anything is
written to the kernel. Flags win over environment variables (`FSM_INIT_<FLAG_UPPER_SNAKE>`, plus
the downward-API `POD_IP`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "ENV_PREFIX",
    "LOCAL_PROXY_MODES",
    "MODES",
    "IPNetwork",
    "Options",
    "OptionsError",
    "env_name",
    "parse_options",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MODES = ("iptables", "iptables-legacy", "iptables-nft", "nftables", "ebpf", "auto")
LOCAL_PROXY_MODES = ("Localhost", "PodIP")
ENV_PREFIX = "FSM_INIT_"
DEFAULT_BYPASS_PORTS = (15010, 15901, 15902, 15903, 15904)

# Linux IFNAMSIZ is 16 including the NUL; iptables accepts a trailing '+' wildcard.
# A bare '+' (every interface) is refused: nft rejects all-wildcard names and it would bypass the
# mesh entirely.
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}\+?$")


@dataclass(frozen=True)
class Options:
    """Everything fsm-init needs to plan and apply the redirect, already validated."""

    mode: str = "iptables"  # iptables | iptables-legacy | iptables-nft | nftables | ebpf | auto
    proxy_uid: int = 1500
    inbound_port: int = 15003
    outbound_port: int = 15001
    inbound_port_exclusions: tuple[int, ...] = ()
    outbound_port_exclusions: tuple[int, ...] = ()
    outbound_ip_range_exclusions: tuple[IPNetwork, ...] = ()
    outbound_ip_range_inclusions: tuple[IPNetwork, ...] = ()
    network_interface_exclusions: tuple[str, ...] = ()
    bypass_ports: tuple[int, ...] = DEFAULT_BYPASS_PORTS
    local_proxy_mode: str = "Localhost"  # Localhost | PodIP
    pod_ip: str | None = None
    ipv6: bool | None = None  # None = detect
    cgroup: str | None = None  # ebpf mode: the pod cgroup v2 dir (--cgroup)
    dry_run: bool = False
    cleanup: bool = False


class OptionsError(ValueError):
    """A flag or environment value is invalid; `option` names it (e.g. `--inbound-port`)."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


def env_name(flag: str) -> str:
    """`--outbound-port-exclusion-list` → `FSM_INIT_OUTBOUND_PORT_EXCLUSION_LIST`."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


# ---------------------------------------------------------------- value parsers (pure)


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _port(option: str, text: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise OptionsError(option, f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= value <= 65535:
        raise OptionsError(option, f"port {value} is out of range (1-65535)")
    return value


def _port_list(option: str, text: str) -> tuple[int, ...]:
    return tuple(dict.fromkeys(_port(option, item) for item in _split(text)))


def _cidr_list(option: str, text: str) -> tuple[IPNetwork, ...]:
    nets: list[IPNetwork] = []
    for item in _split(text):
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise OptionsError(option, f"{item!r} is not a valid IPv4/IPv6 CIDR") from None
        if net not in nets:
            nets.append(net)
    return tuple(nets)


def _iface_list(option: str, text: str) -> tuple[str, ...]:
    names: list[str] = []
    for item in _split(text):
        if item == "+":
            raise OptionsError(
                option,
                "'+' alone would match every interface (bypassing the mesh); name a prefix such as 'eth+'",
            )
        if item in (".", "..") or not _IFNAME_RE.match(item):
            raise OptionsError(
                option,
                f"{item!r} is not a valid interface name (1-15 chars of [A-Za-z0-9_.:@-], optional '+')",
            )
        if item not in names:
            names.append(item)
    return tuple(names)


def _uid(option: str, text: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise OptionsError(option, f"{text!r} is not a numeric UID") from None
    if not 0 <= value <= 0xFFFFFFFE:
        raise OptionsError(option, f"UID {value} is out of range")
    return value


def _choice(option: str, text: str, choices: Sequence[str]) -> str:
    for choice in choices:
        if text.strip().lower() == choice.lower():
            return choice
    raise OptionsError(option, f"{text!r} is not one of {', '.join(choices)}")


def _ip(option: str, text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise OptionsError(option, f"{text!r} is not a valid IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id is not None:
        raise OptionsError(option, f"{text!r} has a zone (%{addr.scope_id}): give the pod's unscoped address")
    if addr.is_link_local or addr.is_unspecified or addr.is_loopback or addr.is_multicast:
        raise OptionsError(
            option, f"{text!r} is not a usable pod address (link-local/loopback/unspecified/multicast)"
        )
    return str(addr)


_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}


def _bool(option: str, text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise OptionsError(option, f"{text!r} is not a boolean (true/false)")


def _tristate(option: str, text: str) -> bool | None:
    if text.strip().lower() in ("", "auto", "detect"):
        return None
    return _bool(option, text)


# ---------------------------------------------------------------- flags

# flag → (Options field, converter, takes a value)
_Conv = Callable[[str, str], Any]
_FLAGS: dict[str, tuple[str, _Conv, bool]] = {
    "--mode": ("mode", lambda o, t: _choice(o, t, MODES), True),
    "--proxy-uid": ("proxy_uid", _uid, True),
    "--inbound-port": ("inbound_port", _port, True),
    "--outbound-port": ("outbound_port", _port, True),
    "--inbound-port-exclusion-list": ("inbound_port_exclusions", _port_list, True),
    "--outbound-port-exclusion-list": ("outbound_port_exclusions", _port_list, True),
    "--outbound-ip-range-exclusion-list": ("outbound_ip_range_exclusions", _cidr_list, True),
    "--outbound-ip-range-inclusion-list": ("outbound_ip_range_inclusions", _cidr_list, True),
    "--network-interface-exclusion-list": ("network_interface_exclusions", _iface_list, True),
    "--bypass-port-list": ("bypass_ports", _port_list, True),
    "--local-proxy-mode": ("local_proxy_mode", lambda o, t: _choice(o, t, LOCAL_PROXY_MODES), True),
    "--pod-ip": ("pod_ip", _ip, True),
    "--ipv6": ("ipv6", _tristate, True),
    "--cgroup": ("cgroup", lambda o, t: t.strip() or None, True),
    "--dry-run": ("dry_run", _bool, False),
    "--cleanup": ("cleanup", _bool, False),
}


class _Parser(argparse.ArgumentParser):
    """argparse that raises OptionsError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        option = "fsm-init"
        match = re.search(r"(--[a-z0-9-]+)", message)
        if match:
            option = match.group(1)
        raise OptionsError(option, message)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (also used for `--help`); values stay raw strings until validation."""
    parser = _Parser(
        prog="fsm-init",
        allow_abbrev=False,
        description="Program traffic redirection into the Pipy sidecar (iptables, nftables or eBPF).",
        epilog=f"Every flag can also come from the environment as {ENV_PREFIX}<FLAG_UPPER_SNAKE>; "
        "POD_IP is read from the downward API. Flags win over the environment.",
    )
    for flag, (field, _conv, takes_value) in _FLAGS.items():
        if takes_value:
            parser.add_argument(flag, dest=field, default=None, metavar="VALUE")
        else:
            parser.add_argument(flag, dest=field, default=None, action="store_const", const="true")
    return parser


def parse_options(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> Options:
    """Parse flags (winning) and environment into a validated Options; raises OptionsError."""
    env = os.environ if env is None else env
    args = build_parser().parse_args([] if argv is None else list(argv))
    values: dict[str, Any] = {}
    for flag, (field, conv, _takes_value) in _FLAGS.items():
        raw = getattr(args, field)
        source = flag
        if raw is None:
            source = env_name(flag)
            raw = env.get(source)
            if raw is None and field == "pod_ip":
                source, raw = "POD_IP", env.get("POD_IP")
        if raw is None:
            continue
        values[field] = conv(source, raw)
    opts = Options(**values)
    _check_consistency(opts)
    return opts


def _check_consistency(opts: Options) -> None:
    if opts.inbound_port == opts.outbound_port:
        raise OptionsError("--inbound-port", "inbound and outbound proxy ports must differ")
    if opts.mode == "ebpf" and opts.local_proxy_mode == "PodIP" and not opts.cleanup:
        raise OptionsError(
            "--local-proxy-mode",
            "PodIP is not supported with --mode ebpf (use --mode iptables/nftables, or auto, which then "
            "skips eBPF)",
        )
