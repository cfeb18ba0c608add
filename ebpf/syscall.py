"""The few bpf(2) commands bcc does not expose: pin/get objects, map lookup, query and detach.

Thin ctypes wrappers so cleanup and stats work without compiling anything (and without bcc).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

__all__ = [
    "ATTACH_TYPES",
    "BPF_F_ALLOW_MULTI",
    "map_lookup",
    "obj_get",
    "obj_pin",
    "prog_detach",
    "prog_name",
    "prog_query",
]

_NR_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

BPF_MAP_LOOKUP_ELEM = 1
BPF_PROG_DETACH = 9
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_F_ALLOW_MULTI = 2
# bpftool name → enum bpf_attach_type
ATTACH_TYPES = {"connect4": 10, "connect6": 11, "sock_ops": 3, "getsockopt": 21, "msg_verdict": 7}


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    res = _libc.syscall(_NR_BPF, cmd, attr, len(attr))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(res)


def _attr(data: bytes, size: int = 128) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(data.ljust(size, b"\0"), size)


def obj_pin(fd: int, path: str) -> None:
    name = ctypes.create_string_buffer(path.encode())
    _bpf(BPF_OBJ_PIN, _attr(struct.pack("=QI", ctypes.addressof(name), fd)))


def obj_get(path: str) -> int:
    name = ctypes.create_string_buffer(path.encode())
    return _bpf(BPF_OBJ_GET, _attr(struct.pack("=QI", ctypes.addressof(name), 0)))


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    try:
        _bpf(
            BPF_MAP_LOOKUP_ELEM, _attr(struct.pack("=IIQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v)))
        )
    except FileNotFoundError:
        return None
    return v.raw


def prog_query(target_fd: int, attach_type: int, max_ids: int = 64) -> list[int]:
    """IDs of the programs attached to a cgroup (directly, not inherited) for one attach type."""
    ids = (ctypes.c_uint32 * max_ids)()
    attr = _attr(struct.pack("=IIIIQI", target_fd, attach_type, 0, 0, ctypes.addressof(ids), max_ids))
    _bpf(BPF_PROG_QUERY, attr)
    count = struct.unpack_from("=I", attr.raw, 24)[0]
    return list(ids[: min(count, max_ids)])


def _prog_fd(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, _attr(struct.pack("=I", prog_id)))


def prog_name(prog_id: int) -> str:
    fd = _prog_fd(prog_id)
    try:
        info = ctypes.create_string_buffer(256)
        _bpf(BPF_OBJ_GET_INFO_BY_FD, _attr(struct.pack("=IIQ", fd, 256, ctypes.addressof(info))))
        return info.raw[64:80].split(b"\0", 1)[0].decode(errors="replace")
    finally:
        os.close(fd)


def prog_detach(target_fd: int, prog_id: int, attach_type: int) -> None:
    fd = _prog_fd(prog_id)
    try:
        _bpf(BPF_PROG_DETACH, _attr(struct.pack("=IIII", target_fd, fd, attach_type, 0)))
    finally:
        os.close(fd)
