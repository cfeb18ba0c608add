"""A certificate directory for a local process: ca.crt/ca.key + tls.crt/tls.key.

`ensure_cert_dir` is idempotent: it keeps what is still good, re-issues only the leaf when only
the leaf is stale, and writes every file atomically so a reader never sees half a file. Key and
certificate are two files, so a reader can still catch a new key beside an old certificate for a
moment; `CertReloader` keeps its old context when the pair does not match and retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from webhook.certs.ca import CA, DEFAULT_CA_VALIDITY, load_cert_pem, public_key_matches, utcnow
from webhook.certs.errors import CertError
from webhook.certs.keys import DEFAULT_KEY_TYPE, KeyType, generate_key, key_to_pem, load_key_pem
from webhook.certs.leaf import Hosts, build_leaf, leaf_problem, renew_at, split_hosts
from webhook.periodic import Periodic

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "DEFAULT_SERVING_VALIDITY",
    "TLS_CERT",
    "TLS_KEY",
    "CertDirRenewer",
    "CertFiles",
    "ensure_cert_dir",
    "write_atomic",
]

log = logging.getLogger(__name__)

CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"
DEFAULT_SERVING_VALIDITY = timedelta(days=90)


@dataclass(frozen=True)
class CertFiles:
    ca: Path
    cert: Path
    key: Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write via a temporary file in the same directory, fsync, rename: all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # umask may have narrowed it; O_CREAT never widens
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _write_pair(cert_path: Path, cert_pem: bytes, key_path: Path, key_pem: bytes) -> None:
    # Both files are complete before either rename; between the two renames a reader may see a
    # mismatched pair, which fails to load and is retried by CertReloader on its next tick.
    write_atomic(key_path, key_pem, mode=0o600)
    write_atomic(cert_path, cert_pem, mode=0o644)
    _fsync_dir(cert_path.parent)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _dir_lock(d: Path) -> Iterator[None]:
    """Serialise processes sharing one cert dir (two `serve` started together)."""
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _load_ca(files: CertFiles, ca_key: Path, now: datetime) -> tuple[CA | None, str | None]:
    """The stored CA, or (None, reason) when it must be created or replaced."""
    if not files.ca.exists():
        return None, "absent"
    try:
        ca = CA.from_pem(files.ca.read_bytes(), ca_key.read_bytes(), source=str(files.ca))
    except CertError as exc:
        raise CertError(f"{exc}; delete {files.ca} and {ca_key} to have new ones generated") from None
    if now >= renew_at(ca.cert):
        return None, f"CA expires {ca.not_after.isoformat()}"
    return ca, None


def ensure_cert_dir(
    cert_dir: Path,
    hosts: Sequence[str],
    *,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    validity: timedelta = DEFAULT_SERVING_VALIDITY,
    ca_validity: timedelta = DEFAULT_CA_VALIDITY,
    common_name: str | None = None,
    now: datetime | None = None,
) -> CertFiles:
    """Make `cert_dir` hold a CA and a serving cert for `hosts` that are good for a while yet."""
    parsed = split_hosts(hosts)
    t = now or utcnow()
    cert_dir = Path(cert_dir)
    try:
        cert_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as exc:
        raise CertError(f"cert_dir: cannot create {cert_dir}: {exc.strerror}") from None
    files = CertFiles(ca=cert_dir / CA_CERT, cert=cert_dir / TLS_CERT, key=cert_dir / TLS_KEY)
    ca_key = cert_dir / CA_KEY
    with _dir_lock(cert_dir):
        if files.ca.exists() and not ca_key.exists():
            # A CA given without its key (bring-your-own, mounted from a Secret): use it, never replace it.
            problem = _leaf_problem(
                files, load_cert_pem(files.ca.read_bytes(), field=str(files.ca)), parsed, t
            )
            if problem is not None:
                raise CertError(
                    f"{files.cert}: {problem}; {ca_key} is absent so it cannot be re-issued "
                    f"(provide {ca_key}, or a valid {files.cert.name}/{files.key.name})"
                )
            return files
        ca, why = _load_ca(files, ca_key, t)
        if ca is None:
            log.info("generating a new CA in %s (%s)", cert_dir, why)
            ca = CA.generate(key_type=key_type, validity=ca_validity, now=t)
            _write_pair(files.ca, ca.cert_pem, ca_key, ca.key_pem)
        problem = _leaf_problem(files, ca.cert, parsed, t)
        if problem is not None:
            log.info("issuing the serving certificate in %s (%s)", cert_dir, problem)
            key = generate_key(key_type)
            cn = common_name or (parsed.dns[0] if parsed.dns else str(parsed.ips[0]))
            leaf = build_leaf(ca, key.public_key(), common_name=cn, hosts=parsed, validity=validity, now=t)
            _write_pair(files.cert, leaf.public_bytes(Encoding.PEM), files.key, key_to_pem(key))
    return files


def _leaf_problem(files: CertFiles, ca_cert: x509.Certificate, hosts: Hosts, now: datetime) -> str | None:
    if not files.cert.exists() or not files.key.exists():
        return "absent"
    try:
        cert = load_cert_pem(files.cert.read_bytes(), field=str(files.cert))
        key = load_key_pem(files.key.read_bytes(), field=str(files.key))
    except CertError as exc:
        return str(exc)
    if not public_key_matches(cert, key):
        return "key does not match certificate"
    return leaf_problem(cert, issuers=[ca_cert], hosts=hosts, now=now)


class CertDirRenewer:
    """Re-runs `ensure_cert_dir` periodically so the files are renewed before they expire.

    Pair it with `CertReloader` on the same files: this writes, the reloader swaps them in.
    """

    def __init__(self, cert_dir: Path, hosts: Sequence[str], **options: object) -> None:
        split_hosts(hosts)  # fail early on bad input
        self.cert_dir, self.hosts, self.options = Path(cert_dir), list(hosts), options
        self._loop = Periodic(
            self.renew_once,
            name="cert-dir-renewer",
            log=log,
            what=f"renewing certificates in {self.cert_dir}",
        )

    def renew_once(self) -> CertFiles:
        return ensure_cert_dir(self.cert_dir, self.hosts, **self.options)  # type: ignore[arg-type]

    def start(self, interval: float = 60.0) -> None:
        self._loop.start(interval)

    def stop(self) -> None:
        self._loop.stop()
