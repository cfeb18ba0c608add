"""Kernel header tree for BCC on hosts without kernel headers.

BCC compiles against a kernel source tree. When `/lib/modules/$(uname -r)/build` exists it is used
as is. Otherwise we build a tiny tree from the UAPI headers (Debian's linux-libc-dev, always in the
image) plus a few stubs, in a per-kernel cache dir, and point `BCC_KERNEL_SOURCE` at it. Socket and
cgroup programs only need UAPI types; BCC brings its own `bpf.h`. The tree is built into a temporary
dir and renamed into place, so concurrent init containers sharing a hostPath cache never see half a
tree, and later starts reuse it (a stamp file records what it was built from).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TREE_FORMAT",
    "HeaderSource",
    "build_tree",
    "cache_root",
    "ensure_kernel_source",
    "installed_headers",
    "version_code",
]

TREE_FORMAT = "fsm-bpf-headers/1"  # bump when the tree layout or stubs change
STAMP = ".fsm-tree"
# (uname machine) → (Debian multiarch include dir, kernel arch dir BCC looks under)
_ARCHES = {
    "x86_64": ("x86_64-linux-gnu", "x86"),
    "aarch64": ("aarch64-linux-gnu", "arm64"),
}

_KCONFIG = """\
/* fsm-onboard stub: the few kernel-internal names BCC's helpers expect. */
#ifndef FSM_STUB_KCONFIG_H
#define FSM_STUB_KCONFIG_H
#include <linux/types.h>
#define CONFIG_BPF_SYSCALL 1
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s8 s8;
typedef __s16 s16;
typedef __s32 s32;
typedef __s64 s64;
typedef unsigned long size_t;
typedef unsigned long uintptr_t;
typedef _Bool bool;
#endif
"""


@dataclass(frozen=True)
class HeaderSource:
    """Where BCC's headers come from: `kind` is installed | built | cached | env."""

    kind: str
    path: Path


def version_code(release: str) -> int:
    """LINUX_VERSION_CODE for a release string such as `6.18.44-fc-v669`."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not match:
        raise ValueError(f"kernel release {release!r} does not start with a version number")
    major, minor, patch = (int(g or 0) for g in match.groups())
    return (major << 16) + (minor << 8) + min(patch, 255)


def installed_headers(release: str, modules: Path = Path("/lib/modules")) -> Path | None:
    """The real header tree for `release`, if the distribution's headers are installed."""
    build = modules / release / "build"
    return build if (build / "include").is_dir() else None


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """FSM_BPF_HEADER_CACHE, else $XDG_CACHE_HOME or ~/.cache, + fsm-onboard/bpf-headers."""
    env = os.environ if env is None else env
    if env.get("FSM_BPF_HEADER_CACHE"):
        return Path(env["FSM_BPF_HEADER_CACHE"])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "fsm-onboard" / "bpf-headers"


def _uapi_identity(uapi: Path) -> str:
    version = uapi / "linux" / "version.h"
    try:
        st = version.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{int(st.st_mtime)}"


def _stamp(release: str, uapi: Path) -> str:
    return f"{TREE_FORMAT}\nrelease={release}\nuapi={uapi}:{_uapi_identity(uapi)}\n"


def _arch_dirs(uapi: Path, machine: str) -> tuple[Path, str]:
    multiarch, karch = _ARCHES.get(machine, (f"{machine}-linux-gnu", machine))
    for candidate in (uapi / multiarch / "asm", uapi / "asm"):
        if candidate.is_dir():
            return candidate, karch
    raise FileNotFoundError(
        f"no UAPI asm headers under {uapi} (looked for {multiarch}/asm and asm): install linux-libc-dev"
    )


def _populate(root: Path, release: str, uapi: Path, machine: str) -> None:
    linux_src = uapi / "linux"
    if not (linux_src / "types.h").is_file():
        raise FileNotFoundError(f"no UAPI headers at {linux_src}: install linux-libc-dev")
    asm_src, karch = _arch_dirs(uapi, machine)
    inc = root / "include"
    shutil.copytree(linux_src, inc / "uapi" / "linux", symlinks=True)
    shutil.copytree(uapi / "asm-generic", inc / "asm-generic", symlinks=True)
    shutil.copytree(asm_src, inc / "asm", symlinks=True)
    (inc / "asm" / "page.h").write_text("/* fsm-onboard stub */\n")
    # BCC ships its own bpf.h (newer than the distribution's); an empty one avoids redefinitions.
    (inc / "uapi" / "linux" / "bpf.h").write_text("/* fsm-onboard stub: BCC provides bpf.h */\n")
    linux = inc / "linux"
    linux.mkdir()
    for entry in (inc / "uapi" / "linux").iterdir():
        (linux / entry.name).symlink_to(Path("..") / "uapi" / "linux" / entry.name)
    stubs = {
        "kconfig.h": _KCONFIG,
        "log2.h": "/* fsm-onboard stub */\n",
        "version.h": f"#define LINUX_VERSION_CODE {version_code(release)}\n"
        "#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))\n",
    }
    for name, text in stubs.items():
        (linux / name).unlink(missing_ok=True)
        (linux / name).write_text(text)
    (root / "arch" / karch / "include").mkdir(parents=True)
    (root / STAMP).write_text(_stamp(release, uapi))


def build_tree(
    release: str | None = None,
    *,
    cache: Path | None = None,
    uapi: Path = Path("/usr/include"),
    machine: str | None = None,
) -> HeaderSource:
    """Return the cached stub tree for `release`, building it first if missing or stale."""
    release = release or platform.release()
    machine = machine or platform.machine()
    cache = cache or cache_root()
    dest = cache / release
    stamp = dest / STAMP
    if stamp.is_file() and stamp.read_text() == _stamp(release, uapi):
        return HeaderSource("cached", dest)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{release}.", dir=cache))
    try:
        _populate(tmp, release, uapi, machine)
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError:
            # Another process won the race with an equivalent tree: use theirs.
            if not (stamp.is_file() and stamp.read_text() == _stamp(release, uapi)):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return HeaderSource("built", dest)


def ensure_kernel_source(
    env: MutableMapping[str, str] | None = None, *, modules: Path = Path("/lib/modules")
) -> HeaderSource:
    """Pick BCC's header tree and export BCC_KERNEL_SOURCE when it is not the installed one.

    Order: an explicit BCC_KERNEL_SOURCE, the installed headers, the (cached) stub tree.
    FSM_BPF_HEADERS=stub skips the installed headers (e.g. when they do not match the kernel).
    """
    target = os.environ if env is None else env
    explicit = target.get("BCC_KERNEL_SOURCE")
    if explicit and not explicit.startswith(str(cache_root(target))):
        return HeaderSource("env", Path(explicit))
    release = platform.release()
    real = installed_headers(release, modules)
    if real is not None and target.get("FSM_BPF_HEADERS", "auto") != "stub":
        return HeaderSource("installed", real)
    source = build_tree(release, cache=cache_root(target))
    target["BCC_KERNEL_SOURCE"] = str(source.path)
    return source
