"""Swap a server's certificate into new TLS handshakes without a restart or a failed request.

Why not `ctx.load_cert_chain()` on the live context: OpenSSL sets the certificate and the key in two
steps and drops the key while the new certificate is in place, and the event loop may create a
connection from that context meanwhile (CPython releases the GIL inside both calls). A handshake in
that window fails. Instead each reload builds a *new* context off to the side, and the live context's
`sni_callback` (called by OpenSSL for every ClientHello, with or without SNI) points each new
connection at the newest one — a per-connection pointer swap under the GIL, never a half-built
context. The server keeps the context object it was started with.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from webhook.periodic import Periodic

__all__ = ["CertReloader", "server_ssl_context"]

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int, int], ...]


def server_ssl_context(
    cert: Path | str,
    key: Path | str,
    *,
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    client_ca: Path | str | None = None,
) -> ssl.SSLContext:
    """A server context; with `client_ca` clients must present a certificate chaining to it (mTLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = min_version
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _stamp(paths: list[Path]) -> Stamp | None:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return None
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class CertReloader:
    """Watch cert/key (and optional client CA bundle) files; new handshakes get the newest pair.

    `check()` is cheap (three stat calls) and safe from any thread. A pair that fails to load (for
    example a new key beside the old certificate, mid-write) is logged and the previous context
    stays in use; the next change of the files is tried again.
    """

    def __init__(
        self,
        ctx: ssl.SSLContext,
        cert: Path | str,
        key: Path | str,
        *,
        client_ca: Path | str | None = None,
        factory: Callable[[], ssl.SSLContext] | None = None,
        on_reload: Callable[[ssl.SSLContext], None] | None = None,
    ) -> None:
        self.cert, self.key = Path(cert), Path(key)
        self.client_ca = Path(client_ca) if client_ca is not None else None
        self._base = ctx
        self._current = ctx
        self._factory = factory or (
            lambda: server_ssl_context(
                self.cert, self.key, min_version=ctx.minimum_version, client_ca=self.client_ca
            )
        )
        self._on_reload = on_reload
        self._paths = [self.cert, self.key] + ([self.client_ca] if self.client_ca else [])
        self._stamp = _stamp(self._paths)
        self._lock = threading.Lock()
        self._loop = Periodic(self.check, name="cert-reloader", log=log, what="certificate reload check")
        self.reloads = 0
        self.failures = 0
        if ctx.sni_callback is not None:
            raise ValueError("ctx: already has an sni_callback; CertReloader needs to own it")
        ctx.sni_callback = self._select

    @property
    def context(self) -> ssl.SSLContext:
        """The context new handshakes use now."""
        return self._current

    def _select(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        current = self._current
        if current is not ctx:
            conn.context = current

    def check(self) -> bool:
        """Reload when the files changed; True when a new certificate is now in use."""
        with self._lock:
            stamp = _stamp(self._paths)
            if stamp is None or stamp == self._stamp:
                return False
            try:
                new = self._factory()
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.failures += 1
                self._stamp = stamp  # retry when the files change again, not every tick
                # ssl errors name the failing step ("KEY_VALUES_MISMATCH"), never key bytes
                log.warning(
                    "keeping the previous certificate: loading %s / %s failed: %s",
                    self.cert,
                    self.key,
                    getattr(exc, "reason", None) or type(exc).__name__,
                )
                return False
            self._current = new
            self._stamp = stamp
            self.reloads += 1
        log.info("serving certificate reloaded from %s", self.cert)
        if self._on_reload is not None:
            self._on_reload(new)
        return True

    def start(self, interval: float = 1.0) -> None:
        """Run `check()` every `interval` seconds in a daemon thread."""
        self._loop.start(interval)

    def stop(self) -> None:
        self._loop.stop()

    def detach(self) -> None:
        """Stop and give the server's context back its own certificate selection."""
        self.stop()
        self._base.sni_callback = None
