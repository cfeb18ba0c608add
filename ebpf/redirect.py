"""eBPF mode of fsm-init: the API the CLI calls (`apply`, `cleanup`, `unavailable_reason`).

Outbound goes through cgroup hooks on the pod cgroup; inbound uses nat rules (PREROUTING →
REDIRECT 15003) from initcontainer's inbound-only planner, because cgroup hooks never see
connections arriving from other hosts (see docs/ebpf.md for why not tc).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from initcontainer.options import Options

from . import syscall
from .cgroup import resolve as resolve_cgroup
from .errors import EbpfError
from .plan import PROGRAMS, STAT_NAMES, EbpfPlan, describe, pin_dir, plan

__all__ = [
    "apply",
    "attach_only",
    "cleanup",
    "detach",
    "plan_for",
    "read_stats",
    "sweep_stale_pins",
    "unavailable_reason",
]

BPFFS = Path("/sys/fs/bpf")
_CAP_NET_ADMIN, _CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 12, 21, 38, 39
_prepared: dict[EbpfPlan, Any] = {}  # plan → loader.Loaded, so apply reuses unavailable_reason's work


def _log(msg: str) -> None:
    print(f"fsm-init: ebpf: {msg}", file=sys.stderr)


def _caps(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_privilege(status: str) -> str | None:
    """Which capability is missing to load and attach socket/cgroup programs (pure: /proc status text)."""
    caps = _caps(status)
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    if has(_CAP_SYS_ADMIN):
        return None
    missing = [
        name for cap, name in ((_CAP_BPF, "CAP_BPF"), (_CAP_NET_ADMIN, "CAP_NET_ADMIN")) if not has(cap)
    ]
    if missing:
        return (
            f"missing capabilities {' and '.join(missing)} (or CAP_SYS_ADMIN): loading cgroup/sockops/sk_msg "
            "programs needs CAP_BPF + CAP_NET_ADMIN"
        )
    return None


def _bpffs_ready() -> bool:
    """Is /sys/fs/bpf a bpffs (mount one if it is an empty plain dir and we may)?"""
    if _is_bpffs(BPFFS):
        return True
    if BPFFS.is_dir():
        subprocess.run(["mount", "-t", "bpf", "bpf", str(BPFFS)], capture_output=True, check=False)
    return _is_bpffs(BPFFS)


def _is_bpffs(path: Path) -> bool:
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and fields[4] == str(path) and right.split()[:1] == ["bpf"]:
            return True
    return False


def _pins_for(cgroup: Path) -> Path:
    return Path(pin_dir(os.stat(cgroup).st_ino, str(BPFFS / "fsm")))


def plan_for(opts: Options, *, skmsg: bool = True) -> EbpfPlan:
    """The plan for this pod: IPv6 and the pod's addresses are detected exactly as the iptables
    path does (`families_for` over netlink), so a dual-stack pod with an IPv4 POD_IP still gets its
    IPv6 traffic intercepted and its own IPv6 address recognised."""
    from initcontainer.netinfo import gather
    from initcontainer.plan import pod_ips_by_family
    from initcontainer.redirect import families_for

    try:
        info = gather()
    except Exception as exc:  # netlink unusable: same fallback as the iptables path
        _log(f"netlink unavailable ({exc}); IPv6 only when asked for")
        info = None
    extra = [a for fam in (4, 6) for a in (info.addresses.get(fam, ()) if info else ())]
    return plan(opts, skmsg=skmsg, families=families_for(opts, info), pod_ips=pod_ips_by_family(opts, extra))


def _loaded(p: EbpfPlan) -> Any:
    from . import loader

    if p not in _prepared:
        _prepared[p] = loader.load(p)
    return _prepared[p]


def unavailable_reason(opts: Options) -> str | None:
    """None when eBPF mode can work here; else one sentence saying why not (used by --mode auto)."""
    if opts.local_proxy_mode == "PodIP":
        return "--local-proxy-mode PodIP is not supported in eBPF mode (iptables/nftables modes support it)"
    try:
        status = Path("/proc/self/status").read_text()
    except OSError as exc:
        return f"cannot read /proc/self/status: {exc.strerror}"
    reason = missing_privilege(status)
    if reason:
        return reason
    try:
        resolve_cgroup(opts.cgroup)
        _loaded(plan_for(opts))  # compile + verifier-load now: a rejection is a reason, not a crash later
    except EbpfError as exc:
        return str(exc)
    return None


def detach(cgroup: Path) -> list[str]:
    """Detach every fsm_* program attached directly to `cgroup`; returns what was detached."""
    done = []
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for prog in PROGRAMS:
            if prog.target != "cgroup":
                continue
            attach_type = syscall.ATTACH_TYPES[prog.bpftool_type]
            for prog_id in syscall.prog_query(fd, attach_type):
                if syscall.prog_name(prog_id).startswith("fsm_"):
                    syscall.prog_detach(fd, prog_id, attach_type)
                    done.append(f"{prog.bpftool_type}:{prog_id}")
    finally:
        os.close(fd)
    return done


def _unpin(pins: Path) -> None:
    if pins.is_dir():
        for entry in pins.iterdir():
            entry.unlink()
        pins.rmdir()


def _cgroup_inodes(root: Path) -> set[int]:
    """Inode numbers of every cgroup under `root` (a cgroup2 mount showing the whole hierarchy)."""
    found = set()
    stack = [str(root)]
    while stack:
        top = stack.pop()
        try:
            found.add(os.stat(top).st_ino)
            with os.scandir(top) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except OSError:  # removed while we walk: gone is gone
            continue
    return found


def sweep_stale_pins(pin_root: Path | None = None, cgroup_root: Path | None = None) -> list[str]:
    """Remove `cg<inode>` pin dirs whose cgroup no longer exists (the pod was deleted without
    --cleanup); the pinned maps and the sk_msg program they hold are freed with them.

    Only when a cgroup2 mount shows the whole hierarchy (inside a cgroup namespace other pods'
    cgroups are invisible and would look gone). Dirs created after the walk started are kept, so a
    pod being set up concurrently is never touched. Returns the removed dirs."""
    from .cgroup import cgroup2_mounts

    pin_root = pin_root or BPFFS / "fsm"
    try:
        dirs = [d for d in pin_root.iterdir() if d.is_dir() and re.fullmatch(r"cg\d+", d.name)]
    except OSError:
        return []
    if not dirs:
        return []
    if cgroup_root is None:
        try:
            mounts = cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
        except OSError:
            return []
        full = [m for m in mounts if m.root == "/"]
        if not full:
            return []
        cgroup_root = Path(full[0].point)
    started = time.time()
    alive = _cgroup_inodes(cgroup_root)
    removed = []
    for d in dirs:
        try:
            if int(d.name[2:]) in alive or d.stat().st_mtime >= started:
                continue
            _unpin(d)
            removed.append(str(d))
        except OSError as exc:
            _log(f"could not remove stale pins {d}: {exc}")
    if removed:
        _log(f"removed pins of deleted cgroups: {', '.join(removed)}")
    return removed


def _install(loaded: Any, cgroup: Path, pins: Path | None) -> dict[str, float]:
    """Fill the new maps, then replace our previous programs (if any) with the new ones.

    The maps are filled before anything attached is touched: a plan the maps cannot hold fails with
    the previous programs (and pins) still in place."""
    from . import loader

    t0 = time.monotonic()
    loader.fill(loaded)
    fill_time = time.monotonic() - t0
    detach(cgroup)  # re-running fsm-init replaces our programs instead of stacking them
    if pins is not None:
        _unpin(pins)
    timings = loader.attach(loaded, cgroup, pins)
    timings["maps"] = fill_time + timings.pop("pin", 0.0)
    return timings


def attach_only(opts: Options, *, skmsg: bool = True) -> tuple[str, dict[str, float]]:
    """Outbound half only (no nat rules): load, fill, pin, attach. Returns (summary, timings)."""
    from . import loader

    t_start = time.monotonic()
    cgroup = resolve_cgroup(opts.cgroup)
    p = plan_for(opts, skmsg=skmsg)
    if opts.dry_run:  # no mount, no compile, no kernel change
        return describe(p, str(cgroup), str(_pins_for(cgroup))), {}
    pins = _pins_for(cgroup) if _bpffs_ready() else None
    if pins is not None:
        sweep_stale_pins()
    loaded = _prepared.pop(p, None)
    reused = loaded is not None
    if loaded is None:
        loaded = loader.load(p)
    try:
        timings = dict(loaded.timings)
        timings.update(_install(loaded, cgroup, pins))
    finally:
        loaded.bpf.cleanup()
    # A load done earlier by unavailable_reason() (same process) counts towards the total.
    timings["total"] = time.monotonic() - t_start + (sum(loaded.timings.values()) if reused else 0.0)
    summary = describe(p, str(cgroup), str(pins or "(no bpffs mounted at /sys/fs/bpf: maps not pinned)"))
    ms = {k: f"{v * 1000:.0f}" for k, v in timings.items()}
    head = (
        f"fsm-init: ebpf ready in {ms['total']} ms (headers {ms['headers']}, compile {ms['compile']}, "
        f"load {ms['load']}, maps {ms['maps']}, attach {ms['attach']} ms; headers: {loaded.headers.kind} "
        f"{loaded.headers.path})"
    )
    return head + "\n" + summary, timings


def apply(opts: Options) -> str:
    """Load, fill maps and attach the outbound hooks, then program inbound nat rules.

    With opts.dry_run, returns what would be done and changes nothing."""
    from initcontainer.redirect import apply_redirect

    if opts.local_proxy_mode == "PodIP":
        raise EbpfError(
            "--local-proxy-mode PodIP is not supported in eBPF mode; use --mode iptables or nftables"
        )
    try:
        summary, _ = attach_only(opts)
    except EbpfError:
        raise
    except Exception as exc:  # OSError from the kernel, or anything bcc raises
        raise EbpfError(f"eBPF setup failed: {exc}") from None
    try:
        inbound = apply_redirect(opts, inbound_only=True, log=_log)
    except Exception:
        if not opts.dry_run:  # never leave outbound redirected without inbound: undo, then report
            cleanup(opts)
        raise
    return summary + "\n  inbound: nat PREROUTING -> " + str(opts.inbound_port) + "\n" + inbound


def cleanup(opts: Options) -> str:
    """Detach every fsm program from the pod cgroup and remove its pinned maps, plus pins left by
    deleted cgroups (nat rules are removed by initcontainer's cleanup, which calls this). Needs no
    compiler: detaching works by program name over the bpf syscall. Returns what was done."""
    cgroup = resolve_cgroup(opts.cgroup)
    pins = _pins_for(cgroup) if cgroup.exists() else None
    if opts.dry_run:
        return f"would detach fsm_* programs from {cgroup} and remove {pins}"
    try:
        detached = detach(cgroup)
        if pins is not None:
            _unpin(pins)
    except OSError as exc:
        raise EbpfError(f"eBPF cleanup of {cgroup} failed: {exc}") from None
    sweep_stale_pins()
    _log(
        f"detached {len(detached)} programs from {cgroup}" + (f" ({', '.join(detached)})" if detached else "")
    )
    return f"ebpf ({len(detached)} programs detached from {cgroup})"


def read_stats(pins: Path) -> dict[str, int]:
    """The fsm_stats counters of a pinned program set (for tests, benchmarks and debugging)."""
    fd = syscall.obj_get(str(pins / "fsm_stats"))
    try:
        out = {}
        for i, name in enumerate(STAT_NAMES):
            raw = syscall.map_lookup(fd, struct.pack("=I", i), 8)
            out[name] = struct.unpack("=Q", raw)[0] if raw else 0
        return out
    finally:
        os.close(fd)
