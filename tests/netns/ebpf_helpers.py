"""Harness for the eBPF netns tests and benchmark, and (run as a script) the processes they start.

A "pod" network namespace joined to a "peer" namespace by a veth pair (10.213.<n>.1 ↔ .2, private
addresses only inside them) plus a fresh cgroup v2 directory standing in for the pod cgroup.
Processes that must be "in the pod" are started through `Pod.spawn`, which writes the child's PID to
cgroup.procs before exec (cgroup hooks act on the cgroup of the socket's creator), then enters the
network namespace with nsenter and drops to UID 1500 with setpriv when asked.

Script modes (stdlib only: UID 1500 runs them with the system Python):
  server PORT...     peer-side servers: first line `remote <port>`, then echo
  proxy PORT...      test sidecar: first line `proxy <port> orig=<ip>:<port>` (SO_ORIGINAL_DST), then echo
  client HOST PORT [N SIZE]  print the first line; then N request/response rounds of SIZE bytes
  rr HOST PORT N SIZE        benchmark: N round trips, prints elapsed seconds
  stream HOST PORT TOTAL CHUNK  benchmark: TOTAL bytes echoed in CHUNK writes, prints elapsed seconds
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[2]
SYS_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PROXY_UID = 1500
SO_ORIGINAL_DST = 80


# ---------------------------------------------------------------- environment


def environment_problem() -> str | None:
    """Why the eBPF netns tests cannot run here (None = they can)."""
    if os.geteuid() != 0:
        return "eBPF netns tests need root (run `make test` as root)"
    for tool in ("ip", "nsenter", "setpriv", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run `make deps`)"
    try:
        import bcc  # noqa: F401
    except ImportError as exc:
        return f"bcc is not importable ({exc}); run `make deps venv` (python3-bpfcc linked into the venv)"
    if cgroup2_root() is None:
        return "no cgroup2 filesystem is mounted and mounting one at /sys/fs/cgroup/unified failed"
    return None


def cgroup2_root() -> Path | None:
    """A cgroup2 mount point (mount one under /sys/fs/cgroup/unified when none exists)."""
    from ebpf.cgroup import cgroup2_mounts

    mounts = [m for m in cgroup2_mounts(Path("/proc/self/mountinfo").read_text()) if m.root == "/"]
    if mounts:
        return Path(mounts[0].point)
    target = Path("/sys/fs/cgroup/unified")
    with contextlib.suppress(OSError):
        target.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "cgroup2", "none", str(target)], capture_output=True).returncode == 0:
        return target
    return None


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


# ---------------------------------------------------------------- the pod


@dataclass
class Pod:
    tag: str
    subnet: int
    cgroup: Path
    ns: str = ""
    peer: str = ""
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def pod_ip(self) -> str:
        return f"10.213.{self.subnet}.1"

    @property
    def peer_ip(self) -> str:
        return f"10.213.{self.subnet}.2"

    @property
    def pod_ip6(self) -> str:
        return f"fd00:213:{self.subnet:x}::1"

    @property
    def peer_ip6(self) -> str:
        return f"fd00:213:{self.subnet:x}::2"

    def spawn(
        self, argv: Sequence[str], *, uid: int | None = None, in_cgroup: bool = True, ns: str | None = None
    ) -> subprocess.Popen[str]:
        """Start argv in namespace `ns` (default: the pod), in the test cgroup unless told otherwise."""
        cmd = nsenter(ns or self.ns)
        if uid is not None:
            cmd += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        cmd += list(argv)
        procs_file = str(self.cgroup / "cgroup.procs")

        def enter_cgroup() -> None:
            if in_cgroup:
                with open(procs_file, "w") as fh:
                    fh.write(str(os.getpid()))

        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=enter_cgroup,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def start(
        self, mode: str, *args: str, uid: int | None = None, in_cgroup: bool = True, ns: str | None = None
    ) -> subprocess.Popen[str]:
        """Start one of this file's server modes and wait for its `ready` line."""
        proc = self.spawn([SYS_PYTHON, str(SCRIPT), mode, *args], uid=uid, in_cgroup=in_cgroup, ns=ns)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"{mode} did not start: {line!r} {err.strip()}")
        return proc

    def client(
        self,
        host: str,
        port: int,
        *,
        uid: int | None = None,
        in_cgroup: bool = True,
        rounds: int = 0,
        size: int = 64,
        timeout: float = 20,
        ns: str | None = None,
    ) -> str:
        """Run one client in the pod (or in namespace ``ns``, e.g. the peer, outside the pod cgroup);
        returns its output (first line, then `rr <n>` when rounds > 0)."""
        proc = self.spawn(
            [SYS_PYTHON, str(SCRIPT), "client", host, str(port), str(rounds), str(size)],
            uid=uid,
            in_cgroup=in_cgroup and ns is None,
            ns=ns,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            return f"client-error rc={proc.returncode} {err.strip()}"
        return out.strip()

    def stop_procs(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()


def _subnet() -> int:
    return random.randint(1, 250)


@contextlib.contextmanager
def make_pod(tag: str = "") -> Iterator[Pod]:
    """Netns pair + cgroup; everything (processes, BPF attachments, pins, nat rules) removed on exit."""
    root = cgroup2_root()
    if root is None:
        raise RuntimeError("no cgroup2 mount")
    tag = (tag or "t") + f"{os.getpid() % 10000}{random.randint(0, 999)}"
    pod = Pod(tag=tag, subnet=_subnet(), cgroup=root / f"fsm-ebpf-test-{tag}")
    pod.ns, pod.peer = f"ebpod-{tag}", f"ebpeer-{tag}"
    pod.cgroup.mkdir()
    try:
        sh("ip", "netns", "add", pod.ns)
        sh("ip", "netns", "add", pod.peer)
        sh("ip", "link", "add", f"ve{tag}"[:15], "type", "veth", "peer", "name", f"vp{tag}"[:15])
        sh("ip", "link", "set", f"ve{tag}"[:15], "netns", pod.ns, "name", "eth0")
        sh("ip", "link", "set", f"vp{tag}"[:15], "netns", pod.peer, "name", "eth0")
        for ns, ip in ((pod.ns, pod.pod_ip), (pod.peer, pod.peer_ip)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for ns, ip in ((pod.ns, pod.pod_ip6), (pod.peer, pod.peer_ip6)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/64", "dev", "eth0", "nodad")
        # A second peer-side network, reachable through the peer, for CIDR-exclusion tests.
        sh("ip", "-n", pod.peer, "addr", "add", f"10.214.{pod.subnet}.2/24", "dev", "lo")
        sh("ip", "-n", pod.ns, "route", "add", f"10.214.{pod.subnet}.0/24", "via", pod.peer_ip)
        yield pod
    finally:
        pod.stop_procs()
        with contextlib.suppress(Exception):
            from ebpf.redirect import cleanup as ebpf_cleanup
            from initcontainer.options import Options

            ebpf_cleanup(Options(mode="ebpf", cgroup=str(pod.cgroup)))
        for ns in (pod.ns, pod.peer):
            sh("ip", "netns", "del", ns, check=False)
        _rmdir_cgroup(pod.cgroup)


def _rmdir_cgroup(path: Path) -> None:
    for _ in range(50):  # bounded: killed processes leave the cgroup within milliseconds
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.05)


def nsenter(ns: str) -> list[str]:
    """Enter only the network namespace: `ip netns exec` would also remount /sys and hide the cgroup2
    and bpffs mounts, unlike a real pod where the init container sees them."""
    return [shutil.which("nsenter") or "nsenter", f"--net=/run/netns/{ns}", "--"]


def fsm_init(*args: str, ns: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `fsm-init` CLI inside namespace `ns` (outside the test cgroup, like an init container)."""
    cmd = [*nsenter(ns), str(ROOT / ".venv/bin/python"), "-m", "initcontainer", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


# ---------------------------------------------------------------- script modes (no imports beyond stdlib)


def _original_dst(sock: socket.socket) -> str:
    try:
        if sock.family == socket.AF_INET6:
            raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
            return f"[{ipaddress.IPv6Address(raw[8:24])}]:{struct.unpack_from('!H', raw, 2)[0]}"
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError as exc:
        return f"none({exc.errno})"
    port = struct.unpack_from("!H", raw, 2)[0]
    return f"{ipaddress.IPv4Address(raw[4:8])}:{port}"


def _serve(ports: Sequence[int], greet: Callable[[int, socket.socket], str]) -> None:
    sel = selectors.DefaultSelector()
    for port in ports:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            lsock = socket.socket(family, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            lsock.bind((host, port))
            lsock.listen(512)
            lsock.setblocking(False)
            sel.register(lsock, selectors.EVENT_READ, ("listen", port))
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            kind, port = key.data
            sock = cast(socket.socket, key.fileobj)
            if kind == "listen":
                conn, _addr = sock.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.sendall(greet(port, conn).encode())
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, ("conn", port))
                continue
            try:
                data = sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(sock)
                sock.close()
                continue
            sock.setblocking(True)
            sock.sendall(data)
            sock.setblocking(False)


def _client(host: str, port: int, rounds: int, size: int) -> None:
    sock = socket.create_connection((host, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    first = b""
    while not first.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        first += chunk
    print(first.decode().strip())
    payload = b"x" * size
    for _ in range(rounds):
        sock.sendall(payload)
        got = 0
        while got < size:
            chunk = sock.recv(size - got)
            if not chunk:
                raise SystemExit("connection closed mid-round")
            got += len(chunk)
    if rounds:
        print(f"rr {rounds}")
    sock.close()


def _bench_rr(host: str, port: int, rounds: int, size: int) -> None:
    """Request/response: `rounds` round trips of `size` bytes; prints the elapsed seconds."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.recv(4096)  # greeting line
    payload = b"r" * size
    start = time.perf_counter()
    for _ in range(rounds):
        sock.sendall(payload)
        got = 0
        while got < size:
            got += len(sock.recv(size - got))
    print(f"{time.perf_counter() - start:.6f}")
    sock.close()


def _bench_stream(host: str, port: int, total: int, chunk: int) -> None:
    """Bulk: send `total` bytes in `chunk`-byte writes while reading the echo; prints elapsed seconds."""
    import threading

    sock = socket.create_connection((host, port), timeout=10)
    sock.recv(4096)
    payload = b"s" * chunk

    def sender() -> None:
        for _ in range(total // chunk):
            sock.sendall(payload)

    start = time.perf_counter()
    thread = threading.Thread(target=sender)
    thread.start()
    got, want = 0, (total // chunk) * chunk
    while got < want:
        data = sock.recv(1 << 20)
        if not data:
            break
        got += len(data)
    thread.join()
    print(f"{time.perf_counter() - start:.6f}")
    sock.close()


def main(argv: Sequence[str]) -> int:
    mode, args = argv[0], argv[1:]
    if mode == "server":
        _serve([int(p) for p in args], lambda port, conn: f"remote {port}\n")
    elif mode == "proxy":
        _serve([int(p) for p in args], lambda port, conn: f"proxy {port} orig={_original_dst(conn)}\n")
    elif mode == "client":
        _client(
            args[0], int(args[1]), int(args[2]) if len(args) > 2 else 0, int(args[3]) if len(args) > 3 else 64
        )
    elif mode == "rr":
        _bench_rr(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif mode == "stream":
        _bench_stream(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
