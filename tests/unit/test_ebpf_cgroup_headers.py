"""Pure tests: finding the pod cgroup, the BCC source bundle and the kernel header tree builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpf import cgroup, headers, loader
from ebpf.errors import EbpfUnavailable
from ebpf.plan import plan
from initcontainer.options import Options

MOUNTINFO = """\
25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
35 25 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
36 25 0:31 / /sys/fs/bpf rw - bpf bpf rw
"""


def test_cgroup2_mounts_parsed_from_mountinfo() -> None:
    assert cgroup.cgroup2_mounts(MOUNTINFO) == [cgroup.Mount("/", "/sys/fs/cgroup")]
    assert cgroup.cgroup2_mounts("24 1 0:5 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n") == []


@pytest.mark.parametrize(
    ("own", "pod"),
    [
        (
            "/kubepods/burstable/pod0b5c7a3e-1111-2222-3333-444455556666/abc123",
            "/kubepods/burstable/pod0b5c7a3e-1111-2222-3333-444455556666",
        ),
        (
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b5c7a3e_1111_2222_3333_444455556666.slice/cri-containerd-ab.scope",
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b5c7a3e_1111_2222_3333_444455556666.slice",
        ),
        ("/some/parent/container", "/some/parent"),
        ("/", None),
        ("/only", None),
    ],
)
def test_pod_cgroup_is_the_pod_level_parent(own: str, pod: str | None) -> None:
    assert cgroup.pod_cgroup(own) == pod


def test_own_cgroup_reads_the_unified_line() -> None:
    assert cgroup.own_cgroup("4:memory:/x\n0::/kubepods/pod1/c\n") == "/kubepods/pod1/c"
    assert cgroup.own_cgroup("4:memory:/x\n") is None


def _proc(tmp_path: Path, mountinfo: str, proc_cgroup: str) -> Path:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(proc_cgroup)
    return tmp_path


def test_resolve_errors_are_sentences(tmp_path: Path) -> None:
    with pytest.raises(EbpfUnavailable, match="cgroup v2 is not mounted"):
        cgroup.resolve(None, proc=_proc(tmp_path, "", "0::/\n"))
    with pytest.raises(EbpfUnavailable, match="cgroup namespace hides it"):
        cgroup.resolve(None, proc=_proc(tmp_path, MOUNTINFO, "0::/\n"))
    with pytest.raises(EbpfUnavailable, match="--cgroup /tmp: not inside a cgroup v2 mount"):
        cgroup.resolve("/tmp", proc=_proc(tmp_path, MOUNTINFO, "0::/\n"))


def test_resolve_maps_the_pod_path_under_the_mount(tmp_path: Path) -> None:
    mnt = tmp_path / "cg"
    pod = mnt / "kubepods" / "pod1"
    (pod / "c1").mkdir(parents=True)
    (pod / "cgroup.procs").write_text("")
    info = f"35 25 0:30 / {mnt} rw - cgroup2 cgroup2 rw\n"
    assert cgroup.resolve(None, proc=_proc(tmp_path, info, "0::/kubepods/pod1/c1\n")) == pod


def test_source_bundle_inlines_each_header_once_with_line_markers() -> None:
    text = loader.source_text(plan(Options(mode="ebpf")))
    assert not [line for line in text.splitlines() if line.startswith('#include "lib/')]
    assert text.count('#line 1 "lib/common.h"') == 1 and text.count('#line 1 "lib/maps.h"') == 1
    for entry in ("connect.c", "sockops.c", "getsockopt.c", "redir.c"):
        assert f'#line 1 "{entry}"' in text
    assert '#line 1 "redir.c"' not in loader.source_text(plan(Options(mode="ebpf"), skmsg=False))


def _fake_uapi(root: Path) -> Path:
    for sub in ("linux", "asm-generic", "x86_64-linux-gnu/asm"):
        (root / sub).mkdir(parents=True)
    (root / "linux" / "types.h").write_text("/* types */\n")
    (root / "linux" / "bpf.h").write_text("/* real uapi bpf.h */\n")
    (root / "linux" / "version.h").write_text("#define LINUX_VERSION_CODE 1\n")
    (root / "asm-generic" / "int-ll64.h").write_text("\n")
    (root / "x86_64-linux-gnu" / "asm" / "types.h").write_text("\n")
    return root


def test_header_tree_is_built_once_then_cached(tmp_path: Path) -> None:
    uapi = _fake_uapi(tmp_path / "usr-include")
    cache = tmp_path / "cache"
    first = headers.build_tree("6.18.44-test", cache=cache, uapi=uapi, machine="x86_64")
    tree = cache / "6.18.44-test"
    assert first == headers.HeaderSource("built", tree)
    assert (tree / "include/uapi/linux/bpf.h").read_text().startswith("/* fsm-onboard stub")
    assert "CONFIG_BPF_SYSCALL" in (tree / "include/linux/kconfig.h").read_text()
    assert (tree / "include/linux/types.h").read_text() == "/* types */\n"  # via relative symlink
    assert (tree / "include/asm/page.h").is_file() and (tree / "arch/x86/include").is_dir()
    assert f"{(6 << 16) + (18 << 8) + 44}" in (tree / "include/linux/version.h").read_text()
    again = headers.build_tree("6.18.44-test", cache=cache, uapi=uapi, machine="x86_64")
    assert again == headers.HeaderSource("cached", tree)
    assert [p.name for p in cache.iterdir()] == ["6.18.44-test"]  # no temp dirs left behind


def test_header_tree_without_uapi_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="linux-libc-dev"):
        headers.build_tree("6.1.0", cache=tmp_path / "c", uapi=tmp_path / "nothing", machine="x86_64")


def test_installed_headers_win_unless_stub_is_forced(tmp_path: Path) -> None:
    import platform

    (tmp_path / platform.release() / "build" / "include").mkdir(parents=True)
    env = {"FSM_BPF_HEADER_CACHE": str(tmp_path / "c")}
    assert headers.ensure_kernel_source(env, modules=tmp_path).kind == "installed"
    assert "BCC_KERNEL_SOURCE" not in env
    assert headers.version_code("5.10.0-21-amd64") == (5 << 16) + (10 << 8)
    with pytest.raises(ValueError, match="kernel release"):
        headers.version_code("weird")
