"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

Usage: dev/cluster up|down|status [--state-dir DIR] [--kubeconfig FILE] [--apiserver-port N] ...

No kubelet runs, so Pods stay Pending; that is enough to see what admission (including our webhook,
served by a local process at https://127.0.0.1:<port>) stored. State (certs, etcd data, logs, pids)
lives under --state-dir (default .dev/cluster); `down` stops exactly the processes `up` recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make `dev` importable
    sys.path.insert(0, str(ROOT))

from dev import pki  # noqa: E402

__all__ = ["Cluster", "ClusterError", "Layout", "Ports", "down", "ensure_binaries", "status", "up"]

BUILD_SCRIPT = ROOT / "dev" / "build.sh"
SERVICE_CIDR = "10.96.0.0/16"  # virtual: nothing routes there, the apiserver only allocates from it
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
ISSUER = "https://kubernetes.default.svc.cluster.local"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")


class ClusterError(Exception):
    """Why the control plane cannot be built, started or stopped (a sentence for the user)."""


@dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its state; two layouts never share a file."""

    state_dir: Path
    kubeconfig: Path

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir.with_name(self.state_dir.name + ".lock")


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int


@dataclass(frozen=True)
class Cluster:
    """What clients of a running control plane need."""

    state_dir: Path
    kubeconfig: Path
    server: str
    ca_file: Path
    client_cert: Path
    client_key: Path


@dataclass(frozen=True)
class Proc:
    """A started process, identified by pid and kernel start time so a recycled pid is never killed."""

    name: str
    pid: int
    start_time: int
    exe: str


# --- binaries ---------------------------------------------------------------------------------------


def ensure_binaries(build: bool = True) -> dict[str, Path]:
    """Paths of etcd, kube-apiserver and kube-controller-manager, building them (cached) if asked."""
    if not BUILD_SCRIPT.is_file():
        raise ClusterError(f"build script not found: {BUILD_SCRIPT}")
    if build:
        for target in ("etcd", "kubernetes"):
            res = subprocess.run([str(BUILD_SCRIPT), target], capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise ClusterError(
                    f"cannot build the control plane ({target}):\n{res.stderr.strip() or res.stdout.strip()}"
                )
    found: dict[str, Path] = {}
    for name in COMPONENTS:
        res = subprocess.run([str(BUILD_SCRIPT), "path", name], capture_output=True, text=True, check=False)
        path = Path(res.stdout.strip()) / name
        if res.returncode != 0 or not os.access(path, os.X_OK):
            raise ClusterError(f"{name} is not built (expected {path}); run `dev/build.sh all` first")
        found[name] = path
    return found


# --- pure: flags and documents -------------------------------------------------------------------------


def etcd_args(exe: Path, layout: Layout, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(exe),
        "--name=fsm-dev",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=fsm-dev={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",  # throw-away data: durability costs seconds on a busy disk
        "--log-level=warn",
    ]


def apiserver_args(exe: Path, layout: Layout, ports: Ports) -> list[str]:
    p = layout.pki
    return [
        str(exe),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={ISSUER}",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
        "--endpoint-reconciler-type=none",  # 127.0.0.1 is no valid Endpoints address; nothing routes anyway
        "--allow-privileged=true",  # fsm-init needs NET_ADMIN/privileged init containers
        "--profiling=false",
    ]


def controller_manager_args(exe: Path, layout: Layout, ports: Ports) -> list[str]:
    p = layout.pki
    kubeconfig = layout.state_dir / "controller-manager.kubeconfig"
    return [
        str(exe),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--cert-dir={layout.state_dir / 'controller-manager'}",
        f"--service-account-private-key-file={p / 'sa.key'}",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}",
        f"--cluster-signing-key-file={p / 'ca.key'}",
        "--use-service-account-credentials=true",  # each controller gets its RBAC role (replicaset → pods)
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--leader-elect=false",
        "--profiling=false",
        # Client-side rate limit of the controllers. The default (20 QPS) alone makes a
        # 1000-replica rollout take >= 50 s whatever the webhook does; production clusters that
        # scale raise it too. bench/rollout.py reports the no-webhook baseline beside its figure.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--concurrent-replicaset-syncs=10",
    ]


def kubeconfig_doc(server: str, ca_pem: bytes, client: pki.CertKey, user: str) -> dict[str, object]:
    """A kubeconfig with embedded credentials (JSON is valid kubeconfig YAML)."""

    def b64(data: bytes) -> str:
        return b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "fsm-onboard-dev",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert_pem),
                    "client-key-data": b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": "fsm-onboard-dev", "context": {"cluster": "fsm-onboard-dev", "user": user}}],
        "current-context": "fsm-onboard-dev",
    }


# --- files and ports -------------------------------------------------------------------------------------


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_pki(layout: Layout, apiserver_port: int) -> None:
    p = layout.pki
    ca = pki.new_ca("fsm-onboard-dev-ca")
    hosts = [
        "127.0.0.1",
        "localhost",
        SERVICE_IP,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ]
    hosts.append("kubernetes.default.svc.cluster.local")
    serving = pki.new_server_cert(ca, "kube-apiserver", hosts)
    admin = pki.new_client_cert(ca, "fsm-onboard-admin", ("system:masters",))
    kcm = pki.new_client_cert(ca, "system:kube-controller-manager")
    # Front proxy (aggregation layer): without it every delegating component (the controller-manager's
    # own serving) logs a missing requestheader CA in a loop.
    front_ca = pki.new_ca("fsm-onboard-dev-front-proxy-ca")
    front = pki.new_client_cert(front_ca, "front-proxy-client")
    sa_key = pki.new_rsa_key()
    _write(p / "ca.crt", ca.cert_pem)
    _write(p / "ca.key", ca.key_pem, private=True)
    _write(p / "apiserver.crt", serving.cert_pem)
    _write(p / "apiserver.key", serving.key_pem, private=True)
    _write(p / "admin.crt", admin.cert_pem)
    _write(p / "admin.key", admin.key_pem, private=True)
    _write(p / "front-proxy-ca.crt", front_ca.cert_pem)
    _write(p / "front-proxy-client.crt", front.cert_pem)
    _write(p / "front-proxy-client.key", front.key_pem, private=True)
    _write(p / "sa.key", sa_key, private=True)
    _write(p / "sa.pub", pki.public_pem(sa_key))
    server = f"https://127.0.0.1:{apiserver_port}"
    docs = {
        layout.state_dir / "controller-manager.kubeconfig": kubeconfig_doc(
            server, ca.cert_pem, kcm, "system:kube-controller-manager"
        ),
        layout.kubeconfig: kubeconfig_doc(server, ca.cert_pem, admin, "fsm-onboard-admin"),
    }
    for path, doc in docs.items():
        _write(path, json.dumps(doc, indent=2).encode(), private=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_port(port: int, option: str) -> int:
    if not 0 < port < 65536:
        raise ClusterError(f"{option}: {port} is not a TCP port (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise ClusterError(
                f"{option}: port {port} on 127.0.0.1 is already in use ({e.strerror})"
            ) from None
    return port


def choose_ports(apiserver: int = 0, etcd: int = 0) -> Ports:
    """Requested ports are checked free; 0 means any free loopback port."""
    taken: set[int] = set()

    def pick(requested: int, option: str) -> int:
        port = _check_port(requested, option) if requested else _free_port()
        while port in taken:
            port = _free_port()
        taken.add(port)
        return port

    return Ports(
        etcd_client=pick(etcd, "--etcd-port"),
        etcd_peer=pick(0, "etcd peer port"),
        apiserver=pick(apiserver, "--apiserver-port"),
        controller_manager=pick(0, "controller-manager port"),
    )


# --- processes ---------------------------------------------------------------------------------------------


def _proc_start_time(pid: int) -> int | None:
    """Kernel start time (clock ticks since boot) or None if no live, non-zombie process has this pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _alive(proc: Proc) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(
            proc.pid, os.WNOHANG
        )  # reap our own child (fixture case) so it does not linger as a zombie
    return _proc_start_time(proc.pid) == proc.start_time


def _start(name: str, argv: list[str], layout: Layout) -> Proc:
    layout.logs.mkdir(parents=True, exist_ok=True)
    with open(layout.logs / f"{name}.log", "ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the `up` command and a Ctrl-C in its terminal
            cwd=layout.state_dir,
        )
    start_time = _proc_start_time(popen.pid)
    return Proc(name=name, pid=popen.pid, start_time=start_time or 0, exe=argv[0])


def _stop(proc: Proc, timeout: float = 10.0) -> None:
    if not _alive(proc):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(proc):
            return
        time.sleep(0.05)
    if _alive(proc):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        for _ in range(100):
            if not _alive(proc):
                return
            time.sleep(0.05)


def _log_tail(layout: Layout, name: str, lines: int = 25) -> str:
    try:
        text = (layout.logs / f"{name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _diagnose(layout: Layout, name: str) -> str:
    tail = _log_tail(layout, name)
    hint = ""
    if "address already in use" in tail:
        hint = " (a port it needs was taken meanwhile; retry, or pass a free --apiserver-port/--etcd-port)"
    return f"{name} failed to start{hint}; last lines of {layout.logs / (name + '.log')}:\n{tail}"


# --- readiness ---------------------------------------------------------------------------------------------


def _https_get(
    url_host: str, port: int, path: str, ctx: ssl.SSLContext, timeout: float = 2.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(url_host, port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def admin_ssl_context(cluster: Cluster) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cluster.ca_file))
    ctx.load_cert_chain(str(cluster.client_cert), str(cluster.client_key))
    return ctx


def _probe(fn: Callable[[], bool]) -> bool:
    try:
        return fn()
    except (OSError, http.client.HTTPException, ValueError):
        return False


def _wait(what: str, check: Callable[[], bool], proc: Proc, layout: Layout, deadline: float) -> None:
    while time.monotonic() < deadline:
        if _probe(check):
            return
        if not _alive(proc):
            raise ClusterError(_diagnose(layout, proc.name))
        time.sleep(0.1)
    raise ClusterError(
        f"timed out waiting for {what}; last lines of {proc.name}'s log:\n{_log_tail(layout, proc.name)}"
    )


def _etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return resp.status == 200 and json.loads(resp.read()).get("health") == "true"
    finally:
        conn.close()


# --- state ---------------------------------------------------------------------------------------------------


def _cluster_for(layout: Layout, ports: Ports) -> Cluster:
    return Cluster(
        state_dir=layout.state_dir,
        kubeconfig=layout.kubeconfig,
        server=f"https://127.0.0.1:{ports.apiserver}",
        ca_file=layout.pki / "ca.crt",
        client_cert=layout.pki / "admin.crt",
        client_key=layout.pki / "admin.key",
    )


def _save(layout: Layout, ports: Ports, procs: list[Proc]) -> None:
    doc = {
        "ports": asdict(ports),
        "kubeconfig": str(layout.kubeconfig),
        "processes": [asdict(p) for p in procs],
    }
    _write(layout.state_file, json.dumps(doc, indent=2).encode())


def _load(layout: Layout) -> tuple[Ports, list[Proc]] | None:
    try:
        doc = json.loads(layout.state_file.read_text())
        return Ports(**doc["ports"]), [Proc(**p) for p in doc["processes"]]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as e:
        raise ClusterError(
            f"{layout.state_file} is corrupt ({e}); stop its processes by hand, then remove it"
        ) from None


def _recorded_kubeconfig(layout: Layout) -> Path | None:
    try:
        return Path(json.loads(layout.state_file.read_text())["kubeconfig"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    layout.state_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(layout.lock_file, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# --- commands ---------------------------------------------------------------------------------------------------


def status(layout: Layout) -> dict[str, object]:
    """`{"state": "up"|"unready"|"stale"|"down", ...}`.

    unready: every recorded process runs but /readyz does not answer 200 (busy or still starting);
    stale: some recorded process is gone.
    """
    loaded = _load(layout)
    if loaded is None:
        return {"state": "down", "state_dir": str(layout.state_dir)}
    ports, procs = loaded
    alive = {p.name: _alive(p) for p in procs}
    cluster = _cluster_for(layout, ports)
    running = all(alive.values()) and len(alive) == len(COMPONENTS)
    ready = running and _probe(
        lambda: _https_get("127.0.0.1", ports.apiserver, "/readyz", admin_ssl_context(cluster))[0] == 200
    )
    return {
        "state": "up" if ready else "unready" if running else "stale",
        "server": cluster.server,
        "kubeconfig": str(layout.kubeconfig),
        "state_dir": str(layout.state_dir),
        "processes": {p.name: {"pid": p.pid, "alive": alive[p.name]} for p in procs},
    }


def up(
    layout: Layout,
    *,
    apiserver_port: int = 0,
    etcd_port: int = 0,
    build: bool = True,
    timeout: float = 120.0,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[Cluster, bool]:
    """Start the control plane unless it is already up; returns it and whether it was started now."""
    with _locked(layout):
        current = status(layout)
        if current["state"] in ("up", "unready"):
            loaded = _load(layout)
            assert loaded is not None
            running = _cluster_for(layout, loaded[0])
            if current["state"] == "unready":  # never tear down a live cluster that is merely busy
                api = next(p for p in loaded[1] if p.name == "kube-apiserver")
                ctx = admin_ssl_context(running)
                port = loaded[0].apiserver
                say("already running but not ready yet; waiting for /readyz")
                _wait(
                    "kube-apiserver /readyz of the running cluster",
                    lambda: _https_get("127.0.0.1", port, "/readyz", ctx)[0] == 200,
                    api,
                    layout,
                    time.monotonic() + timeout,
                )
            return running, False
        if current["state"] == "stale":
            say(f"stale state in {layout.state_dir} (a component died); restarting from scratch")
            _down_locked(layout)
        bins = ensure_binaries(build)
        ports = choose_ports(apiserver_port, etcd_port)
        if layout.state_dir.exists():
            shutil.rmtree(layout.state_dir)
        layout.state_dir.mkdir(parents=True)
        _write_pki(layout, ports.apiserver)
        cluster = _cluster_for(layout, ports)
        procs: list[Proc] = []
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            etcd = _start("etcd", etcd_args(bins["etcd"], layout, ports), layout)
            procs.append(etcd)
            _save(layout, ports, procs)
            _wait("etcd /health", lambda: _etcd_healthy(ports.etcd_client), etcd, layout, deadline)
            say(f"etcd ready ({time.monotonic() - t0:.1f} s)")
            api = _start("kube-apiserver", apiserver_args(bins["kube-apiserver"], layout, ports), layout)
            procs.append(api)
            _save(layout, ports, procs)
            ctx = admin_ssl_context(cluster)

            def ready(path: str) -> bool:
                return _https_get("127.0.0.1", ports.apiserver, path, ctx)[0] == 200

            _wait("kube-apiserver /readyz", lambda: ready("/readyz"), api, layout, deadline)
            say(f"kube-apiserver ready ({time.monotonic() - t0:.1f} s)")
            kcm = _start(
                "kube-controller-manager",
                controller_manager_args(bins["kube-controller-manager"], layout, ports),
                layout,
            )
            procs.append(kcm)
            _save(layout, ports, procs)
            insecure = ssl.create_default_context()
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE  # its self-signed serving cert; we only ask /healthz
            _wait(
                "kube-controller-manager /healthz",
                lambda: _https_get("127.0.0.1", ports.controller_manager, "/healthz", insecure)[0] == 200,
                kcm,
                layout,
                deadline,
            )
            _wait(
                "the `default` ServiceAccount (serviceaccount controller)",
                lambda: ready("/api/v1/namespaces/default/serviceaccounts/default"),
                kcm,
                layout,
                deadline,
            )
            say(f"kube-controller-manager ready ({time.monotonic() - t0:.1f} s)")
        except BaseException:
            for proc in reversed(procs):
                _stop(proc)
            with contextlib.suppress(OSError):
                layout.state_file.unlink()
            with contextlib.suppress(OSError):
                layout.kubeconfig.unlink()
            raise
        return cluster, True


def _down_locked(layout: Layout) -> list[str]:
    loaded = _load(layout)
    stopped: list[str] = []
    if loaded is not None:
        for proc in reversed(loaded[1]):
            if _alive(proc):
                _stop(proc)
                stopped.append(f"{proc.name} (pid {proc.pid})")
            if _alive(proc):
                raise ClusterError(
                    f"{proc.name} (pid {proc.pid}) did not stop; state kept in {layout.state_dir}"
                )
    recorded = _recorded_kubeconfig(layout) if loaded is not None else None
    if layout.state_dir.exists():
        shutil.rmtree(layout.state_dir)
    if recorded is not None and recorded == layout.kubeconfig:  # never delete a kubeconfig we did not write
        with contextlib.suppress(FileNotFoundError):
            layout.kubeconfig.unlink()
    return stopped


def down(layout: Layout) -> list[str]:
    """Stop the processes `up` recorded (verified by pid and start time) and remove the state."""
    with _locked(layout):
        stopped = _down_locked(layout)
    with contextlib.suppress(FileNotFoundError):
        layout.lock_file.unlink()
    return stopped


# --- CLI --------------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dev/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir", type=Path, default=ROOT / ".dev" / "cluster", help="default: .dev/cluster"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=ROOT / ".dev" / "kubeconfig", help="default: .dev/kubeconfig"
    )
    parser.add_argument("--apiserver-port", type=int, default=0, help="default: any free loopback port")
    parser.add_argument("--etcd-port", type=int, default=0, help="default: any free loopback port")
    parser.add_argument("--no-build", action="store_true", help="fail instead of building missing binaries")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    return parser


def say(msg: str) -> None:
    print(f"dev/cluster: {msg}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    layout = Layout(state_dir=args.state_dir.absolute(), kubeconfig=args.kubeconfig.absolute())
    try:
        if args.command == "up":
            t0 = time.monotonic()
            cluster, started = up(
                layout,
                apiserver_port=args.apiserver_port,
                etcd_port=args.etcd_port,
                build=not args.no_build,
                timeout=args.timeout,
                say=say,
            )
            if started:
                say(f"up in {time.monotonic() - t0:.1f} s: {cluster.server}")
            else:
                say(f"already up: {cluster.server}")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
        elif args.command == "down":
            stopped = down(layout)
            say(f"stopped {', '.join(stopped)}; removed {layout.state_dir}" if stopped else "not running")
        else:
            doc = status(layout)
            print(json.dumps(doc, indent=2))
            return 0 if doc["state"] == "up" else 1
    except ClusterError as e:
        say(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        say("interrupted; started processes were stopped")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
