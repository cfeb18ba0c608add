"""Parsers for the scalar values that MeshConfig fields and onboarding annotations share.

Each parser takes the raw value and returns the typed value or raises ``ValueError`` with a reason
phrased to follow the field name ("expected a port 1-65535, got '0'"); callers prefix the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable

from webhook.constants import FALSE_VALUES, TRUE_VALUES

__all__ = [
    "one_of",
    "parse_cidr_list",
    "parse_duration",
    "parse_interface_list",
    "parse_port",
    "parse_port_list",
    "parse_quantity",
    "parse_switch",
    "split_list",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_QUANTITY = re.compile(
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$"
)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@+-]{1,15}$")


def split_list(raw: str) -> list[str]:
    """Split a comma list as FSM's annotations are written: spaces ignored, empty items dropped."""
    return [item.strip() for item in raw.split(",") if item.strip()]


def one_of(choices: tuple[str, ...], *, strip: bool = False) -> Callable[[object], str]:
    """A parser accepting exactly one of ``choices`` (annotations: after stripping blanks)."""

    def check(raw: object) -> str:
        value = raw.strip() if strip and isinstance(raw, str) else raw
        if value not in choices:
            raise ValueError(f"expected one of {'|'.join(choices)}, got {raw!r}")
        return str(value)

    return check


def parse_switch(raw: object) -> bool:
    """Read FSM's enabled/yes/true and disabled/no/false (case-insensitive)."""
    text = str(raw).strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise ValueError(f"expected one of enabled|yes|true|disabled|no|false, got {raw!r}")


def parse_port(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected a port 1-65535, got {raw!r}")
    try:
        port = int(str(raw).strip())
    except ValueError:
        raise ValueError(f"expected a port 1-65535, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"expected a port 1-65535, got {raw!r}")
    return port


def _items(raw: object) -> Iterable[object]:
    if isinstance(raw, str):
        return split_list(raw)
    if isinstance(raw, list | tuple):
        return raw
    raise ValueError(f"expected a comma-separated string or a list, got {type(raw).__name__}")


def parse_port_list(raw: object) -> tuple[int, ...]:
    """Ports from ``"80, 443"`` or ``[80, 443]``, de-duplicated in first-seen order."""
    return tuple(dict.fromkeys(parse_port(item) for item in _items(raw)))


def parse_cidr_list(raw: object) -> tuple[IPNetwork, ...]:
    """CIDRs (IPv4 and IPv6 mixed); a bare address counts as a /32 or /128."""
    out: dict[IPNetwork, None] = {}
    for item in _items(raw):
        try:
            out[ipaddress.ip_network(str(item).strip(), strict=False)] = None
        except ValueError:
            raise ValueError(f"expected CIDRs like 10.0.0.0/8 or fd00::/8, got {item!r}") from None
    return tuple(out)


def parse_interface_list(raw: object) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for item in _items(raw):
        name = str(item).strip()
        if not _IFNAME.match(name):
            raise ValueError(f"expected network interface names (1-15 characters), got {item!r}")
        out[name] = None
    return tuple(out)


def parse_quantity(raw: object) -> str:
    """A Kubernetes resource quantity (``100m``, ``128Mi``, ``1.5``); returned as written."""
    text = str(raw).strip()
    if isinstance(raw, bool) or not _QUANTITY.match(text):
        raise ValueError(f"expected a Kubernetes quantity like 100m or 128Mi, got {raw!r}")
    return text


def parse_duration(raw: object) -> float:
    """A Go duration (``24h``, ``1h30m``, ``0s``) in seconds."""
    text = str(raw).strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text or isinstance(raw, bool):
        raise ValueError(f"expected a duration like 24h, 90m or 1h30m, got {raw!r}")
    return total
