"""Run the webhook over HTTPS with uvicorn; certificates swapped in without a restart.

uvicorn builds its SSLContext once (``config.load()``); we load the config ourselves, raise the
floor to TLS 1.2 and hand that same context to ``CertReloader``, which points new handshakes at
the newest cert/key files. ``Server.serve`` sees the config already loaded and keeps our context.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from webhook.certs.reload import CertReloader

__all__ = ["TLSFiles", "run_https"]

log = logging.getLogger("fsm_onboard.server")


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path


def build_server(
    app: FastAPI, host: str, port: int, tls: TLSFiles, *, log_level: str = "warning"
) -> tuple[uvicorn.Server, CertReloader]:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_keep_alive=30,
        lifespan="off",
    )
    config.load()
    assert config.ssl is not None
    config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    reloader = CertReloader(config.ssl, tls.cert, tls.key)
    return uvicorn.Server(config), reloader


def run_https(
    app: FastAPI,
    host: str,
    port: int,
    tls: TLSFiles,
    *,
    log_level: str = "warning",
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; cert files are re-read when they change on disk.

    ``on_started`` runs in a thread once the socket listens (cluster mode registers the webhook
    configuration then, so the API server never calls a server that is not there yet).
    """
    server, reloader = build_server(app, host, port, tls, log_level=log_level)
    reloader.start(interval=1.0)
    if on_started is not None:

        def wait_then_call() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                try:
                    on_started()
                except Exception as exc:  # stop serving rather than run unregistered
                    log.error("start-up step failed, shutting down: %s", exc)
                    server.should_exit = True

        threading.Thread(target=wait_then_call, name="on-started", daemon=True).start()
    log.info("serving https://%s:%d (TLS 1.2+)", host, port)
    try:
        server.run()
    finally:
        reloader.stop()
