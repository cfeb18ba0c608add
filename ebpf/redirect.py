"""eBPF mode of fsm-init: the API the CLI calls (`apply`, `cleanup`, `unavailable_reason`).

Outbound goes through cgroup hooks on the pod cgroup; inbound uses nat rules (PREROUTING →
REDIRECT 15003) from initcontainer's inbound-only planner, because cgroup hooks never see
connections arriving from other hosts (see docs/ebpf.md for why not tc).
"""

from __future__ import annotations

import os
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

__all__ = ["apply", "attach_only", "cleanup", "detach", "read_stats", "unavailable_reason"]

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


def _loaded(p: EbpfPlan) -> Any:
    from . import loader

    if p not in _prepared:
        _prepared[p] = loader.load(p)
    return _prepared[p]


def unavailable_reason(opts: Options) -> str | None:
    """None when eBPF mode can work here; else one sentence saying why not (used by --mode auto)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError as exc:
        return f"cannot read /proc/self/status: {exc.strerror}"
    reason = missing_privilege(status)
    if reason:
        return reason
    try:
        resolve_cgroup(opts.cgroup)
        _loaded(plan(opts))  # compile + verifier-load now: a rejection is a reason, not a crash later
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


def attach_only(opts: Options, *, skmsg: bool = True) -> tuple[str, dict[str, float]]:
    """Outbound half only (no nat rules): load, fill, pin, attach. Returns (summary, timings)."""
    from . import loader

    t_start = time.monotonic()
    cgroup = resolve_cgroup(opts.cgroup)
    p = plan(opts, skmsg=skmsg)
    if opts.dry_run:  # no mount, no compile, no kernel change
        return describe(p, str(cgroup), str(_pins_for(cgroup))), {}
    pins = _pins_for(cgroup) if _bpffs_ready() else None
    loaded = _prepared.pop(p, None)
    reused = loaded is not None
    if loaded is None:
        loaded = loader.load(p)
    try:
        detach(cgroup)  # re-running fsm-init replaces our programs instead of stacking them
        if pins is not None:
            _unpin(pins)
        timings = dict(loaded.timings)
        timings.update(loader.attach(loaded, cgroup, pins))
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

    try:
        summary, _ = attach_only(opts)
    except OSError as exc:
        raise EbpfError(f"eBPF setup failed: {exc}") from None
    try:
        inbound = apply_redirect(opts, inbound_only=True, log=_log)
    except Exception:
        if not opts.dry_run:  # never leave outbound redirected without inbound: undo, then report
            cleanup(opts)
        raise
    return summary + "\n  inbound: nat PREROUTING -> " + str(opts.inbound_port) + "\n" + inbound


def cleanup(opts: Options) -> None:
    """Detach every fsm program from the pod cgroup and remove its pinned maps (nat rules are
    removed by initcontainer's cleanup, which calls this)."""
    cgroup = resolve_cgroup(opts.cgroup)
    try:
        detached = detach(cgroup)
        pins = Path(pin_dir(os.stat(cgroup).st_ino, str(BPFFS / "fsm")))
        _unpin(pins)
    except OSError as exc:
        raise EbpfError(f"eBPF cleanup of {cgroup} failed: {exc}") from None
    _log(
        f"detached {len(detached)} programs from {cgroup}" + (f" ({', '.join(detached)})" if detached else "")
    )


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
