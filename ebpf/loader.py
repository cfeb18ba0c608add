"""The only module that imports bcc: compile the C sources, load, fill maps, attach, pin.

BCC rewrites map calls only in its main file, so `source_text()` inlines the `lib/` headers (with
`#line` markers, so compiler and verifier messages still name the right file and line).
"""

from __future__ import annotations

import ctypes as ct
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import syscall
from .errors import EbpfError, EbpfUnavailable
from .headers import HeaderSource, ensure_kernel_source
from .plan import EbpfPlan

__all__ = ["BPF_DIR", "Loaded", "attach", "fill", "load", "source_text"]

BPF_DIR = Path(__file__).with_name("bpf")
_INCLUDE = re.compile(r'^#include "(lib/[A-Za-z0-9_./-]+\.h)"\s*$')
MAPS_TO_PIN = (
    "fsm_settings",
    "fsm_out_excl_ports",
    "fsm_excl_cidr4",
    "fsm_incl_cidr4",
    "fsm_excl_cidr6",
    "fsm_incl_cidr6",
    "fsm_origin_ck",
    "fsm_origin4",
    "fsm_origin6",
    "fsm_stats",
)
SOCKHASHES = ("fsm_sockhash4", "fsm_sockhash6")


def _inline(path: Path, seen: set[Path], out: list[str]) -> None:
    if path in seen:
        return
    seen.add(path)
    lines = path.read_text().splitlines()
    out.append(f'#line 1 "{path.relative_to(BPF_DIR)}"')
    for number, line in enumerate(lines, start=1):
        match = _INCLUDE.match(line)
        if match:
            _inline(BPF_DIR / match.group(1), seen, out)
            out.append(f'#line {number + 1} "{path.relative_to(BPF_DIR)}"')
        else:
            out.append(line)


def source_text(plan: EbpfPlan) -> str:
    """One compilation unit holding every entry file the plan needs, headers inlined once."""
    seen: set[Path] = set()
    out: list[str] = []
    for source in dict.fromkeys(p.source for p in plan.programs):
        _inline(BPF_DIR / source, seen, out)
    return "\n".join(out) + "\n"


@dataclass
class Loaded:
    """A compiled and verifier-loaded module, not yet attached."""

    bpf: Any
    plan: EbpfPlan
    functions: dict[str, Any]
    headers: HeaderSource
    timings: dict[str, float] = field(default_factory=dict)

    def map_fd(self, name: str) -> int:
        import bcc

        fd = int(bcc.libbcc.lib.bpf_table_fd(self.bpf.module, name.encode()))
        if fd < 0:
            raise EbpfError(f"map {name} is missing from the compiled module")
        return fd


def _import_bcc() -> Any:
    try:
        import bcc
    except ImportError as exc:
        raise EbpfUnavailable(
            f"the bcc Python package is not importable ({exc}); install python3-bpfcc (the init image carries it)"
        ) from None
    return bcc


def load(plan: EbpfPlan) -> Loaded:
    """Compile with BCC (header tree prepared first) and load every program through the verifier."""
    bcc = _import_bcc()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        headers = ensure_kernel_source()
    except (OSError, ValueError) as exc:  # unwritable cache, no linux-libc-dev, odd uname: not usable here
        raise EbpfUnavailable(
            f"cannot prepare a kernel header tree for BCC ({exc}); install linux-libc-dev or the node's "
            "kernel headers, or make FSM_BPF_HEADER_CACHE writable"
        ) from None
    timings["headers"] = time.monotonic() - t0
    t0 = time.monotonic()
    try:
        bpf = bcc.BPF(text=source_text(plan).encode(), cflags=list(plan.cflags))
    except Exception as exc:
        raise EbpfUnavailable(
            f"BCC could not compile the BPF programs ({exc}; header tree: {headers.kind} {headers.path}); "
            "see the compiler output above"
        ) from None
    timings["compile"] = time.monotonic() - t0
    t0 = time.monotonic()
    functions = {}
    for prog in plan.programs:
        prog_type = getattr(bcc.BPFProgType, prog.prog_type)
        attach_type = getattr(bcc.BPFAttachType, prog.attach_type)
        kwargs = {"attach_type": attach_type} if prog.target == "cgroup" else {}
        try:
            functions[prog.name] = bpf.load_func(prog.name.encode(), prog_type, **kwargs)
        except Exception as exc:
            bpf.cleanup()
            raise EbpfUnavailable(
                f"the kernel refused to load {prog.name} ({prog.bpftool_type}): {exc} — the program type may be "
                "unsupported by this kernel, CAP_BPF/CAP_NET_ADMIN may be missing, or the verifier rejected it "
                "(its log is printed above)"
            ) from None
    timings["load"] = time.monotonic() - t0
    return Loaded(bpf, plan, functions, headers, timings)


def fill(loaded: Loaded) -> None:
    """Write the plan into the (not yet attached) maps. Done before the previous programs are
    detached, so a failure here leaves the pod as it was; bcc's bare exceptions become EbpfError."""
    try:
        _fill(loaded)
    except EbpfError:
        raise
    except Exception as exc:
        p = loaded.plan
        raise EbpfError(
            f"filling the BPF maps failed ({exc}); maps hold {p.excl_max} entries per list, the plan has "
            f"{len(p.outbound_port_exclusions)} excluded ports, {len(p.exclude4)}/{len(p.exclude6)} excluded "
            f"and {len(p.include4)}/{len(p.include6)} included IPv4/IPv6 CIDRs"
        ) from None


def _fill(loaded: Loaded) -> None:
    p, b = loaded.plan, loaded.bpf
    settings = b[b"fsm_settings"]
    leaf = settings.Leaf()
    leaf.proxy_uid = p.proxy_uid
    leaf.pod_ip4 = int.from_bytes(p.pod_ip4, "little" if _little() else "big") if p.pod_ip4 else 0
    for i in range(4):
        leaf.pod_ip6[i] = (
            int.from_bytes(p.pod_ip6[4 * i : 4 * i + 4], "little" if _little() else "big") if p.pod_ip6 else 0
        )
    leaf.outbound_port = p.outbound_port
    leaf.inbound_port = p.inbound_port
    leaf.flags = p.flags
    ports = b[b"fsm_out_excl_ports"]
    for port in p.outbound_port_exclusions:
        ports[ports.Key(port)] = ports.Leaf(1)
    for name, entries in (
        ("fsm_excl_cidr4", p.exclude4),
        ("fsm_incl_cidr4", p.include4),
        ("fsm_excl_cidr6", p.exclude6),
        ("fsm_incl_cidr6", p.include6),
    ):
        table = b[name.encode()]
        for prefixlen, addr in entries:
            key = table.Key()
            key.prefixlen = prefixlen
            ct.memmove(ct.addressof(key.addr), addr, len(addr))
            table[key] = table.Leaf(1)
    # Settings last: until outbound_port is set the programs let everything through.
    settings[ct.c_int(0)] = leaf


def _little() -> bool:
    return sys.byteorder == "little"


def _pin(loaded: Loaded, pins: Path) -> list[str]:
    pins.mkdir(parents=True, exist_ok=True)
    names = list(MAPS_TO_PIN) + (list(SOCKHASHES) if loaded.plan.skmsg else [])
    for name in names:
        target = pins / name
        target.unlink(missing_ok=True)
        syscall.obj_pin(loaded.map_fd(name), str(target))
    return names


def _unpin(pins: Path) -> None:
    if pins.is_dir():
        for entry in pins.iterdir():
            entry.unlink()
        pins.rmdir()


def attach(loaded: Loaded, cgroup: Path, pins: Path | None) -> dict[str, float]:
    """Pin the (already filled, see `fill`) maps when a bpffs dir is given and attach every program.

    All or nothing: if any step fails, what this call attached is detached again and the pins are
    removed before the error is raised, so no hook is left running without the others."""
    import bcc

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    undo: list[tuple[Any, int, Any]] = []  # (function, target fd, attach type) attached so far
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            if pins is not None:
                _pin(loaded, pins)
            timings["pin"] = time.monotonic() - t0
            t0 = time.monotonic()
            # sk_msg first, then the cgroup hooks: sockets are only put in the sockhash once a verdict exists.
            for prog in sorted(loaded.plan.programs, key=lambda p: p.target != "sockhash"):
                fn = loaded.functions[prog.name]
                attach_type = getattr(bcc.BPFAttachType, prog.attach_type)
                try:
                    if prog.target == "sockhash":
                        for name in SOCKHASHES:
                            map_fd = loaded.map_fd(name)
                            bcc.BPF.attach_func(fn, map_fd, attach_type)
                            undo.append((fn, map_fd, attach_type))
                    else:
                        bcc.BPF.attach_func(fn, fd, attach_type, syscall.BPF_F_ALLOW_MULTI)
                        undo.append((fn, fd, attach_type))
                except Exception as exc:
                    raise EbpfError(
                        f"attaching {prog.name} ({prog.bpftool_type}) to {cgroup} failed: {exc}; "
                        "the programs attached before it were detached again"
                    ) from None
        except BaseException:
            _rollback(undo, pins)
            raise
    finally:
        os.close(fd)
    timings["attach"] = time.monotonic() - t0
    return timings


def _rollback(undo: list[tuple[Any, int, Any]], pins: Path | None) -> None:
    import bcc

    for fn, target_fd, attach_type in reversed(undo):
        try:
            bcc.BPF.detach_func(fn, target_fd, attach_type)
        except Exception as exc:  # keep undoing the rest; the caller reports the original failure
            print(f"fsm-init: ebpf: rollback: detaching {fn.name!r} failed: {exc}", file=sys.stderr)
    if pins is not None:
        try:
            _unpin(pins)
        except OSError as exc:
            print(f"fsm-init: ebpf: rollback: removing {pins} failed: {exc}", file=sys.stderr)
