"""Orchestration: choose the backend for a mode, then plan + apply, dry-run or clean up.

This is the API other packages call (the eBPF engineer uses `apply_redirect(opts,
inbound_only=True)` for the inbound half in ebpf mode). The CLI is a thin wrapper around it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .apply import (
    IptablesBackend,
    RedirectError,
    apply_iptables,
    apply_nft,
    cleanup_iptables,
    cleanup_nft,
    current_rules,
    detect_backend,
    verify_nft,
)
from .executor import Executor, SubprocessExecutor
from .netinfo import NetInfo, gather
from .options import Options
from .plan import (
    iptables_cleanup_text,
    iptables_restore_text,
    nft_cleanup_script,
    nft_script,
    pod_ips_by_family,
)

__all__ = [
    "Target",
    "apply_redirect",
    "cleanup_redirect",
    "families_for",
    "resolve",
    "run",
]

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"fsm-init: {msg}", file=sys.stderr)


@dataclass(frozen=True)
class Target:
    """Where the rules go: 'iptables' (with a backend), 'nftables' or 'ebpf'."""

    kind: str
    backend: IptablesBackend | None = None
    log: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.backend.mode if self.backend else self.kind


def families_for(opts: Options, info: NetInfo | None) -> tuple[int, ...]:
    """IPv4 always; IPv6 when asked, or (auto) when the pod has a global IPv6 address or POD_IP is v6."""
    if opts.ipv6 is not None:
        return (4, 6) if opts.ipv6 else (4,)
    if opts.pod_ip and ":" in opts.pod_ip:
        return (4, 6)
    if info is not None and info.ipv6_enabled and info.has_global_ipv6:
        return (4, 6)
    return (4,)


def _ebpf() -> Any:
    """The eBPF engineer's module, imported lazily (absent or broken → RedirectError)."""
    try:
        return importlib.import_module("ebpf.redirect")
    except Exception as exc:  # an import error of any kind means "not usable here"
        raise RedirectError(f"the ebpf.redirect module cannot be imported ({exc})") from None


def resolve(
    opts: Options, ex: Executor, families: Sequence[int], *, verify: bool = True, log: Log = _stderr
) -> Target:
    """Mode → Target. `auto`: ebpf if usable, else the detected iptables backend, else nftables;
    each fallback's reason goes to `log`. Raises RedirectError when nothing works."""
    mode = opts.mode
    if mode == "ebpf":
        try:
            reason = _ebpf().unavailable_reason(opts)
        except RedirectError as exc:
            reason = str(exc)
        if reason:
            raise RedirectError(f"ebpf: {reason}")
        return Target("ebpf")
    if mode in ("iptables", "iptables-legacy", "iptables-nft"):
        forced = mode.split("-", 1)[1] if "-" in mode else None
        backend, lines = detect_backend(ex, families, forced=forced, verify=verify)
        return Target("iptables", backend, tuple(lines))
    if mode == "nftables":
        reason = verify_nft(ex) if verify else (None if ex.which("nft") else "nft is not installed")
        if reason:
            raise RedirectError(reason)
        return Target("nftables")
    # auto
    reasons = []
    try:
        reason = _ebpf().unavailable_reason(opts)
    except RedirectError as exc:
        reason = str(exc)
    if reason is None:
        return Target("ebpf")
    log(f"auto: ebpf not used: {reason}")
    reasons.append(f"ebpf: {reason}")
    try:
        backend, lines = detect_backend(ex, families, verify=verify)
        return Target("iptables", backend, tuple(lines))
    except RedirectError as exc:
        log(f"auto: iptables not used: {exc}")
        reasons.append(str(exc))
    reason = verify_nft(ex) if verify else (None if ex.which("nft") else "nft is not installed")
    if reason is None:
        return Target("nftables")
    log(f"auto: nftables not used: {reason}")
    reasons.append(reason)
    raise RedirectError("auto: no redirect backend works here: " + "; ".join(reasons))


def _net(log: Log) -> NetInfo | None:
    try:
        return gather()
    except Exception as exc:  # netlink unusable: fall back to IPv4 only, say so
        log(f"netlink unavailable ({exc}); assuming IPv4 only")
        return None


def _pod_ips(opts: Options, info: NetInfo | None) -> dict[int, str]:
    extra = [a for fam in (4, 6) for a in (info.addresses.get(fam, ()) if info else ())]
    return pod_ips_by_family(opts, extra)


def _warn_interfaces(opts: Options, info: NetInfo | None, log: Log) -> None:
    if info is None:
        return
    for name in opts.network_interface_exclusions:
        if not name.endswith("+") and name not in info.interfaces:
            log(f"warning: excluded interface {name!r} does not exist (yet) in this pod")


def _inbound_target(ex: Executor, families: Sequence[int], verify: bool, log: Log) -> Target:
    """ebpf mode's inbound half: the detected iptables backend, else native nftables."""
    try:
        backend, lines = detect_backend(ex, families, verify=verify)
        return Target("iptables", backend, tuple(lines))
    except RedirectError as exc:
        log(f"inbound: iptables not used: {exc}")
    reason = verify_nft(ex) if verify else None
    if reason:
        raise RedirectError(f"inbound redirect: no iptables or nftables backend works: {reason}")
    return Target("nftables")


def apply_redirect(
    opts: Options,
    *,
    inbound_only: bool = False,
    executor: Executor | None = None,
    target: Target | None = None,
    log: Log = _stderr,
) -> str:
    """Plan and apply (or with opts.dry_run, print-ready text of what would be applied).

    `inbound_only=True` programs only PREROUTING → FSM_PROXY_INBOUND → 15003 (ebpf mode's inbound
    half). Returns a human summary or, for a dry run, the exact text. Raises RedirectError."""
    ex = executor or SubprocessExecutor()
    info = _net(log)
    families = families_for(opts, info)
    pod_ips = _pod_ips(opts, info)
    if opts.local_proxy_mode == "PodIP" and not inbound_only and not any(f in pod_ips for f in families):
        raise RedirectError("PodIP mode: no pod IP (set POD_IP or --pod-ip)")
    _warn_interfaces(opts, info, log)
    if target is None:
        target = (
            _inbound_target(ex, families, not opts.dry_run, log)
            if inbound_only
            else resolve(opts, ex, families, verify=not opts.dry_run, log=log)
        )
    for line in target.log:
        log(line)
    if target.kind == "ebpf":
        summary: str = _ebpf().apply(opts)
        return summary
    if target.kind == "nftables":
        if opts.dry_run:
            return f"# nft -f -   (mode nftables, IPv{'/IPv'.join(map(str, families))})\n" + nft_script(
                opts, families, pod_ips=pod_ips, inbound_only=inbound_only
            )
        apply_nft(ex, opts, families, pod_ips=pod_ips, inbound_only=inbound_only)
        return (
            f"fsm-init: applied native nftables table inet fsm_proxy (IPv{'/IPv'.join(map(str, families))})"
        )
    assert target.backend is not None
    backend = target.backend
    if opts.dry_run:
        out = []
        for fam in families:
            save = current_rules(ex, backend, fam)
            note = "" if save.ok else "   (current rules unreadable; shown for a fresh pod)"
            out.append(f"# {backend.tool(fam, '-restore')} --noflush   (IPv{fam}){note}")
            out.append(
                iptables_restore_text(
                    opts,
                    fam,
                    pod_ip=pod_ips.get(fam),
                    inbound_only=inbound_only,
                    current=save.stdout if save.ok else "",
                )
            )
        return "\n".join(out)
    texts = apply_iptables(ex, backend, opts, families, pod_ips=pod_ips, inbound_only=inbound_only)
    count = sum(1 for t in texts.values() for line in t.splitlines() if line.startswith("-A "))
    return f"fsm-init: applied {count} rules with {backend.mode} (IPv{'/IPv'.join(map(str, texts))})"


def cleanup_redirect(opts: Options, *, executor: Executor | None = None, log: Log = _stderr) -> str:
    """Remove everything fsm-init added, from every backend where it is found (or, dry run, say what)."""
    ex = executor or SubprocessExecutor()
    done: list[str] = []
    failures: list[str] = []
    if opts.mode in ("ebpf", "auto"):
        # Always detach (it needs no compiler, unlike unavailable_reason()). In auto mode a cgroup that
        # cannot be resolved means eBPF was never attached (apply resolves it the same way).
        try:
            done.append(_ebpf().cleanup(opts))
        except RedirectError as exc:
            if opts.mode == "ebpf" or not _ebpf_never_used(exc):
                failures.append(str(exc))
            log(f"cleanup: {exc}")
    variants = {"iptables-legacy": ("legacy",), "iptables-nft": ("nft",)}.get(opts.mode, ("nft", "legacy"))
    for variant in variants:
        backend = IptablesBackend(variant)
        if not ex.which(backend.tool(4, "-restore")):
            continue
        if opts.dry_run:
            for fam in (4, 6):
                save = current_rules(ex, backend, fam)
                if save.ok and "FSM_PROXY_" in save.stdout:
                    done.append(
                        f"# {backend.tool(fam, '-restore')} --noflush\n" + iptables_cleanup_text(save.stdout)
                    )
            continue
        fams = cleanup_iptables(ex, backend, (4, 6))
        if fams:
            done.append(f"{backend.mode} (IPv{'/IPv'.join(map(str, fams))})")
    if opts.mode in ("nftables", "auto", "iptables", "ebpf"):
        if opts.dry_run:
            if ex.which("nft") and ex.run(["nft", "list", "table", "inet", "fsm_proxy"]).ok:
                done.append("# nft -f -\n" + nft_cleanup_script())
        elif cleanup_nft(ex):
            done.append("nftables (table inet fsm_proxy)")
    if failures:
        raise RedirectError(
            "cleanup: " + "; ".join(failures) + (f" (cleaned up: {', '.join(done)})" if done else "")
        )
    if opts.dry_run:
        return "\n".join(done) if done else "# nothing to clean up"
    return "fsm-init: cleaned up " + (", ".join(done) if done else "nothing (no fsm-init rules found)")


def _ebpf_never_used(exc: RedirectError) -> bool:
    """auto cleanup: the eBPF side is absent or has no cgroup to attach to, so it holds nothing."""
    unavailable = getattr(sys.modules.get("ebpf.errors"), "EbpfUnavailable", None)
    return (unavailable is not None and isinstance(exc, unavailable)) or "cannot be imported" in str(exc)


def run(opts: Options, *, executor: Executor | None = None, log: Log = _stderr) -> str:
    """Everything the CLI does after parsing."""
    if opts.cleanup:
        return cleanup_redirect(opts, executor=executor, log=log)
    return apply_redirect(opts, executor=executor, log=log)
