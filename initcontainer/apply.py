"""Appliers: put a Plan into the kernel with iptables-restore (legacy or nft) or native nft.

Each family is one atomic `*-restore --noflush` call; if IPv6 fails after IPv4 succeeded, IPv4 is
rolled back so nothing is left half-applied. Native nftables replaces `table inet fsm_proxy` in one
`nft -f` transaction. Backend detection follows Istio: prefer the backend that already holds
rules (ours first), then the image's default `iptables`, and verify that its nat table works.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .executor import Executor, Result, SubprocessExecutor
from .options import Options
from .plan import (
    CHAINS,
    NFT_TABLE,
    iptables_cleanup_text,
    iptables_restore_text,
    nft_cleanup_script,
    nft_script,
)

__all__ = [
    "IptablesBackend",
    "RedirectError",
    "apply_iptables",
    "apply_nft",
    "cleanup_iptables",
    "cleanup_nft",
    "current_rules",
    "detect_backend",
    "diagnose",
    "nat_section",
    "nft_table_exists",
]

VARIANTS = ("nft", "legacy")


class RedirectError(RuntimeError):
    """The kernel or the image cannot do what was asked; the message says what is missing."""


@dataclass(frozen=True)
class IptablesBackend:
    """One iptables variant: 'legacy' or 'nft'; `plain` means the unsuffixed binaries are it."""

    variant: str
    plain: bool = False

    def tool(self, family: int, suffix: str = "") -> str:
        base = "iptables" if family == 4 else "ip6tables"
        if self.plain:
            return f"{base}{suffix}"
        return f"{base}-{self.variant}{suffix}"

    @property
    def mode(self) -> str:
        return f"iptables-{self.variant}"


def diagnose(result: Result, what: str) -> str:
    """Turn a failed command into a sentence saying what is missing."""
    err = (result.stderr or result.stdout).strip()
    low = err.lower()
    if result.returncode == 127:
        return f"{what}: {result.argv[0]} is not installed in the fsm-init image"
    if "permission denied" in low or "operation not permitted" in low or "must be root" in low:
        return (
            f"{what}: permission denied — fsm-init needs CAP_NET_ADMIN (and CAP_NET_RAW) and runAsUser 0; "
            f"check the init container's securityContext ({err.splitlines()[0] if err else 'no output'})"
        )
    if re.search(r"syntax error|all-wildcard|bad argument|unknown option|invalid argument `|try `", low):
        # The command line or script itself is wrong (e.g. nft refusing an interface name): not a
        # kernel problem, so say so instead of blaming nat support.
        return f"{what}: {result.argv[0]} rejected the generated rules (exit {result.returncode}): {err}"
    if re.search(
        r"table does not exist|can't initialize|protocol not supported|no such file or directory|"
        r"could not fetch rule set|operation not supported",
        low,
    ):
        return (
            f"{what}: the kernel has no usable nat support for this backend "
            f"(needs nf_nat with iptable_nat/ip6table_nat for legacy, nft_chain_nat for nft): {err.splitlines()[0]}"
        )
    return f"{what}: {result.argv[0]} failed (exit {result.returncode}): {err or 'no output'}"


# ---------------------------------------------------------------- iptables


def _count_rules(text: str) -> tuple[int, bool]:
    lines = [line for line in text.splitlines() if line.startswith("-A ")]
    ours = any(chain in text for chain in CHAINS)
    return len(lines), ours


def _candidates(ex: Executor) -> list[IptablesBackend]:
    found = [IptablesBackend(v) for v in VARIANTS if ex.which(f"iptables-{v}-restore")]
    if not found and ex.which("iptables-restore"):
        version = ex.run(["iptables", "--version"])
        variant = "nft" if "nf_tables" in version.stdout else "legacy"
        found = [IptablesBackend(variant, plain=True)]
    return found


def _default_variant(ex: Executor) -> str | None:
    version = ex.run(["iptables", "--version"])
    if not version.ok:
        return None
    return "nft" if "nf_tables" in version.stdout else "legacy"


def detect_backend(
    ex: Executor, families: Sequence[int], *, forced: str | None = None, verify: bool = True
) -> tuple[IptablesBackend, list[str]]:
    """Pick the iptables variant (forced = 'legacy'|'nft' or None) and verify its nat table.

    Returns the backend and log lines explaining the choice; raises RedirectError naming what is
    missing when no variant works."""
    log: list[str] = []
    candidates = _candidates(ex)
    if forced:
        candidates = [c for c in candidates if c.variant == forced]
        if not candidates:
            raise RedirectError(
                f"iptables-{forced}: iptables-{forced}-restore is not installed in the fsm-init image"
            )
    if not candidates:
        raise RedirectError(
            "iptables: neither iptables-legacy nor iptables-nft is installed in the fsm-init image"
        )
    scored = []
    for cand in candidates:
        total, ours = 0, False
        for fam in families:
            res = ex.run([cand.tool(fam, "-save")])
            if res.ok:
                n, o = _count_rules(res.stdout)
                total, ours = total + n, ours or o
        scored.append((cand, total, ours))
        log.append(
            f"iptables-{cand.variant}: {total} existing rules{' (fsm-init chains present)' if ours else ''}"
        )
    default = _default_variant(ex)
    scored.sort(key=lambda s: (not s[2], -s[1], s[0].variant != default, s[0].variant != "nft"))
    failures = []
    for cand, _total, _ours in scored:
        if not verify:
            return cand, log
        bad = None
        for fam in families:
            res = ex.run([cand.tool(fam), "-t", "nat", "-S"])
            if not res.ok:
                bad = diagnose(res, f"{cand.tool(fam)} nat table")
                break
        if bad is None:
            log.append(
                f"using iptables-{cand.variant} (nat table verified for IPv{'/IPv'.join(map(str, families))})"
            )
            return cand, log
        failures.append(bad)
        log.append(f"iptables-{cand.variant} unusable: {bad}")
    raise RedirectError("; ".join(failures))


def current_rules(ex: Executor, backend: IptablesBackend, family: int) -> Result:
    """The nat table of one family as `iptables-save -t nat` prints it (read-only).

    Legacy `*-save -t nat` loads iptable_nat and creates an empty nat table in the pod's netns
    (a cleanup in a fresh pod would leave one behind), so for legacy the plain `*-save`, which dumps
    only existing tables, is run and its nat section kept."""
    if backend.variant != "legacy":
        return ex.run([backend.tool(family, "-save"), "-t", "nat"])
    res = ex.run([backend.tool(family, "-save")])
    return Result(res.argv, res.returncode, nat_section(res.stdout) if res.ok else res.stdout, res.stderr)


def nat_section(save: str) -> str:
    """The `*nat` ... `COMMIT` part of an iptables-save dump ('' when there is no nat table)."""
    out: list[str] = []
    inside = False
    for line in save.splitlines():
        if line.startswith("*"):
            inside = line == "*nat"
        if inside:
            out.append(line)
            if line == "COMMIT":
                inside = False
    return "\n".join(out) + "\n" if out else ""


def _restore(ex: Executor, backend: IptablesBackend, family: int, text: str) -> Result:
    return ex.run([backend.tool(family, "-restore"), "--noflush"], text)


def apply_iptables(
    ex: Executor,
    backend: IptablesBackend,
    opts: Options,
    families: Sequence[int],
    *,
    pod_ips: dict[int, str] | None = None,
    inbound_only: bool = False,
) -> dict[int, str]:
    """Apply per family (one restore call each); roll back on a later failure. Returns the texts."""
    applied: dict[int, str] = {}
    for fam in families:
        save = current_rules(ex, backend, fam)
        if not save.ok:
            _rollback(ex, backend, applied)
            raise RedirectError(diagnose(save, f"{save.argv[0]} -t nat"))
        text = iptables_restore_text(
            opts, fam, pod_ip=(pod_ips or {}).get(fam), inbound_only=inbound_only, current=save.stdout
        )
        res = _restore(ex, backend, fam, text)
        if not res.ok:
            _rollback(ex, backend, applied)
            raise RedirectError(diagnose(res, f"{res.argv[0]} --noflush"))
        applied[fam] = text
    return applied


def _rollback(ex: Executor, backend: IptablesBackend, applied: dict[int, str]) -> None:
    for fam in applied:
        save = current_rules(ex, backend, fam)
        _restore(ex, backend, fam, iptables_cleanup_text(save.stdout if save.ok else ""))


def cleanup_iptables(ex: Executor, backend: IptablesBackend, families: Sequence[int]) -> list[int]:
    """Remove our jumps and chains where present; returns the families that had any."""
    cleaned = []
    for fam in families:
        save = current_rules(ex, backend, fam)
        if not save.ok or not any(chain in save.stdout for chain in CHAINS):
            continue
        res = _restore(ex, backend, fam, iptables_cleanup_text(save.stdout))
        if not res.ok:
            raise RedirectError(diagnose(res, f"{res.argv[0]} cleanup"))
        cleaned.append(fam)
    return cleaned


# ---------------------------------------------------------------- native nftables


def apply_nft(
    ex: Executor,
    opts: Options,
    families: Sequence[int],
    *,
    pod_ips: dict[int, str] | None = None,
    inbound_only: bool = False,
) -> str:
    """Replace `table inet fsm_proxy` in one transaction; returns the script."""
    script = nft_script(opts, families, pod_ips=pod_ips, inbound_only=inbound_only)
    res = ex.run(["nft", "-f", "-"], script)
    if not res.ok:
        raise RedirectError(diagnose(res, "nft -f"))
    return script


def nft_table_exists(ex: Executor) -> bool:
    return ex.run(["nft", "list", "table", "inet", NFT_TABLE]).ok


def cleanup_nft(ex: Executor) -> bool:
    """Delete our table if it exists; True if something was removed."""
    if not ex.which("nft") or not nft_table_exists(ex):
        return False
    res = ex.run(["nft", "-f", "-"], nft_cleanup_script())
    if not res.ok:
        raise RedirectError(diagnose(res, "nft cleanup"))
    return True


def verify_nft(ex: Executor | None = None) -> str | None:
    """None if native nft with a nat chain works here, else the reason (checked in a scratch table)."""
    ex = ex or SubprocessExecutor()
    if not ex.which("nft"):
        return "nft is not installed in the fsm-init image"
    probe = (
        "table inet fsm_proxy_probe\ndelete table inet fsm_proxy_probe\n"
        "table inet fsm_proxy_probe {\n\tchain o {\n\t\ttype nat hook output priority -100;\n\t}\n}\n"
        "delete table inet fsm_proxy_probe\n"
    )
    res = ex.run(["nft", "-f", "-"], probe)
    return None if res.ok else diagnose(res, "nft nat chain")
