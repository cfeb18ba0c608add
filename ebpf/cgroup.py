"""Finding the pod's cgroup v2 directory.

The init container's own cgroup dies with it; the pod-level cgroup (its parent: `.../pod<uid>` with
the cgroupfs driver, `...-pod<uid>.slice` with systemd) holds every container of the pod, so hooks
attached there cover the app and the sidecar. Parsers are pure; `resolve()` reads /proc.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import EbpfUnavailable

__all__ = ["Mount", "cgroup2_mounts", "own_cgroup", "pod_cgroup", "resolve"]

_POD_RE = re.compile(
    r"(^|[-_])pod[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}(\.slice)?$"
)


@dataclass(frozen=True)
class Mount:
    root: str  # the cgroup path this mount shows at its mount point
    point: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def cgroup2_mounts(mountinfo: str) -> list[Mount]:
    """cgroup2 mounts from /proc/self/mountinfo text, in order."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split() or right.split()[0] != "cgroup2":
            continue
        found.append(Mount(_unescape(fields[3]), _unescape(fields[4])))
    return found


def own_cgroup(proc_cgroup: str) -> str | None:
    """The unified-hierarchy path (`0::/path`) from /proc/self/cgroup text."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def pod_cgroup(own: str) -> str | None:
    """The pod-level cgroup above `own`: the nearest `pod<uid>` component, else the parent."""
    parts = [p for p in own.split("/") if p]
    for i in range(len(parts) - 1, -1, -1):
        if _POD_RE.search(parts[i]):
            return "/" + "/".join(parts[: i + 1])
    if len(parts) < 2:
        return None  # the root (or a cgroup namespace hiding the pod level): ambiguous
    return "/" + "/".join(parts[:-1])


def _mount_for(path: str, mounts: list[Mount]) -> Mount | None:
    best: Mount | None = None
    for m in mounts:
        if (path == m.point or path.startswith(m.point.rstrip("/") + "/")) and (
            best is None or len(m.point) > len(best.point)
        ):
            best = m
    return best


def resolve(explicit: str | None, *, proc: Path = Path("/proc/self")) -> Path:
    """The cgroup v2 directory to attach to: `explicit` (--cgroup) or the pod cgroup of this process."""
    try:
        mounts = cgroup2_mounts((proc / "mountinfo").read_text())
    except OSError as exc:
        raise EbpfUnavailable(f"cannot read {proc}/mountinfo: {exc.strerror}") from None
    if not mounts:
        raise EbpfUnavailable(
            "cgroup v2 is not mounted (no cgroup2 filesystem in /proc/self/mountinfo); eBPF mode attaches "
            "to the pod's cgroup v2 directory: use a cgroup v2 node or --mode iptables"
        )
    if explicit:
        path = os.path.realpath(explicit)
        if _mount_for(path, mounts) is None:
            raise EbpfUnavailable(
                f"--cgroup {explicit}: not inside a cgroup v2 mount ({', '.join(m.point for m in mounts)})"
            )
        if not os.path.isfile(os.path.join(path, "cgroup.procs")):
            raise EbpfUnavailable(f"--cgroup {explicit}: not a cgroup directory (no cgroup.procs)")
        return Path(path)
    own = own_cgroup((proc / "cgroup").read_text())
    if own is None:
        raise EbpfUnavailable("this process has no cgroup v2 membership (/proc/self/cgroup has no 0:: line)")
    pod = pod_cgroup(own)
    if pod is None:
        raise EbpfUnavailable(
            f"cannot tell the pod cgroup from /proc/self/cgroup ({own!r}: a cgroup namespace hides it); "
            "pass --cgroup PATH or mount the host's cgroup2 filesystem"
        )
    for m in mounts:
        rel = os.path.relpath(pod, m.root) if m.root != "/" else pod.lstrip("/")
        if rel.startswith(".."):
            continue
        candidate = Path(m.point) / rel
        if (candidate / "cgroup.procs").is_file():
            return candidate
    raise EbpfUnavailable(
        f"the pod cgroup {pod} is not visible under any cgroup2 mount ({', '.join(m.point for m in mounts)}); "
        "mount the host's /sys/fs/cgroup or pass --cgroup PATH"
    )
