"""Network-namespace harness for the fsm-init tests and the redirect benchmark.

A "pod" and a "client" namespace joined by a veth pair, private addresses only inside them.
Sockets are created inside a namespace from a short-lived thread that `setns()`s into it (a socket
keeps its namespace for life), so clients and servers run in-process and the suite stays fast;
only the test proxy is a separate process, because it must run as UID 1500.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FSM_INIT = [str(ROOT / ".venv/bin/python"), "-m", "initcontainer"]
PROXY_SCRIPT = Path(__file__).with_name("proxy.py")
# The proxy runs as UID 1500, which cannot read a Python under /root: use the system one (stdlib only).
PROXY_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def environment_problem() -> str | None:
    """Why these tests cannot run here (None = they can)."""
    if os.geteuid() != 0:
        return "netns tests need root (run `make test` as root)"
    for tool in ("ip", "iptables-legacy-restore", "iptables-nft-restore", "nft", "setpriv"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"{tool} is not installed (run `make deps`)"
    name = f"fsmprobe{os.getpid()}"
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if res.returncode != 0:
        return f"`ip netns add` fails: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, input=stdin, timeout=60)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def in_ns(
    ns: str, *argv: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *argv, check=check, stdin=stdin)


def ns_socket(ns: str, family: int) -> socket.socket:
    """A TCP socket living in namespace `ns` (created by a thread that joined it)."""
    box: dict[str, object] = {}

    def worker() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns({ns}) failed")
            finally:
                os.close(fd)
            box["sock"] = socket.socket(family, socket.SOCK_STREAM)
        except BaseException as exc:
            box["err"] = exc

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    if "err" in box:
        raise box["err"]  # type: ignore[misc]
    return box["sock"]  # type: ignore[return-value]


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def request(ns: str, host: str, port: int, timeout: float = 3.0) -> list[str]:
    """Connect from `ns` to host:port and return the lines received until EOF."""
    sock = ns_socket(ns, family_of(host))
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    finally:
        sock.close()
    return data.decode().splitlines()


class Servers:
    """Line servers in namespaces: each connection gets `server <name> local=<ip>:<port> peer=<ip>`."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def listen(self, ns: str, host: str, port: int, name: str) -> None:
        sock = ns_socket(ns, family_of(host))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ, name)
        self.socks.append(sock)

    def start(self) -> Servers:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.2):
                lsock = key.fileobj
                assert isinstance(lsock, socket.socket)
                try:
                    conn, peer = lsock.accept()
                except OSError:
                    continue
                local = conn.getsockname()
                conn.setblocking(True)
                with contextlib.suppress(OSError):
                    conn.sendall(f"server {key.data} local={fmt(local)} peer={peer[0]}\n".encode())
                conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        for s in self.socks:
            s.close()


def fmt(addr: tuple) -> str:
    return f"{addr[0]}:{addr[1]}"


@dataclass
class Topology:
    """pod <-veth-> client; `other_*` are second client addresses used for CIDR rules."""

    pod: str
    client: str
    pod4: str
    client4: str
    other4: str
    pod6: str
    client6: str
    other6: str
    other4_cidr: str
    other6_cidr: str

    def pod_ip(self, fam: int) -> str:
        return self.pod4 if fam == 4 else self.pod6

    def client_ip(self, fam: int) -> str:
        return self.client4 if fam == 4 else self.client6

    def other_ip(self, fam: int) -> str:
        return self.other4 if fam == 4 else self.other6


def make_topology(tag: str = "") -> Topology:
    """Create the two namespaces and the veth pair; call `destroy_topology` in a finally."""
    suffix = (tag or uuid.uuid4().hex[:6])[:8]
    n = 1 + (os.getpid() + int(uuid.uuid4().hex[:4], 16)) % 250
    topo = Topology(
        pod=f"fsmi-pod-{suffix}",
        client=f"fsmi-cli-{suffix}",
        pod4=f"10.250.{n}.2",
        client4=f"10.250.{n}.1",
        other4=f"10.250.{n}.65",
        pod6=f"fd00:fa:{n:x}::2",
        client6=f"fd00:fa:{n:x}::1",
        other6=f"fd00:fa:{n:x}::101",
        other4_cidr=f"10.250.{n}.64/26",
        other6_cidr=f"fd00:fa:{n:x}::100/120",
    )
    try:
        sh("ip", "netns", "add", topo.pod)
        sh("ip", "netns", "add", topo.client)
        sh(
            "ip",
            "-n",
            topo.pod,
            "link",
            "add",
            "p0",
            "type",
            "veth",
            "peer",
            "name",
            "c0",
            "netns",
            topo.client,
        )
        for ns, dev, addrs in (
            (topo.pod, "p0", [f"{topo.pod4}/24", f"{topo.pod6}/64"]),
            (
                topo.client,
                "c0",
                [f"{topo.client4}/24", f"{topo.other4}/24", f"{topo.client6}/64", f"{topo.other6}/64"],
            ),
        ):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            for addr in addrs:
                extra = ["nodad"] if ":" in addr else []
                if addr.startswith(topo.other6 + "/"):
                    extra.append("preferred_lft")  # deprecated: never chosen as a source address
                    extra.append("0")
                sh("ip", "-n", ns, "addr", "add", addr, "dev", dev, *extra)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        wait_link(topo)
    except Exception:
        destroy_topology(topo)
        raise
    return topo


def wait_link(topo: Topology, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        links = [
            sh("ip", "-n", ns, "-o", "link", "show", dev).stdout
            for ns, dev in ((topo.pod, "p0"), (topo.client, "c0"))
        ]
        if all("state UP" in link for link in links):
            return
        time.sleep(0.05)
    raise RuntimeError("veth link between the test namespaces did not come up")


def destroy_topology(topo: Topology) -> None:
    for ns in (topo.pod, topo.client):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def fsm_init(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real fsm-init CLI inside namespace `ns` as root."""
    return in_ns(ns, *FSM_INIT, *args, check=check)


class Proxy:
    """The test proxy (tests/netns/proxy.py) as UID 1500 in the pod namespace."""

    def __init__(self, ns: str, outbound: int = 15001, inbound: int = 15003, quiet: bool = False) -> None:
        argv = [
            "ip",
            "netns",
            "exec",
            ns,
            "setpriv",
            "--reuid=1500",
            "--regid=1500",
            "--clear-groups",
            PROXY_PYTHON,
            str(PROXY_SCRIPT),
            str(outbound),
            str(inbound),
        ]
        if quiet:
            argv.append("--quiet")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(
                f"test proxy did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
