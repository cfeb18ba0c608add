"""FastAPI application factory: routes only, no logic (that lives in ``mutate``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webhook.mutate import Mutator
from webhook.validate import Validator

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's own request limit is 3 MiB
JSON = "application/json"


def _too_large() -> Response:
    body = {"error": "request body too large", "limit_bytes": MAX_BODY_BYTES}
    return Response(orjson.dumps(body), status_code=413, media_type=JSON)


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it exceeds MAX_BODY_BYTES (checked while streaming, not after)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(mutator: Mutator, *, ready: Callable[[], bool] = lambda: True) -> FastAPI:
    app = FastAPI(title="fsm-onboard", docs_url=None, redoc_url=None, openapi_url=None)
    validator = Validator(mutator.metrics)

    def admission_route(path: str, review: Callable[[bytes], Awaitable[tuple[int, bytes]]]) -> None:
        async def handle(request: Request) -> Response:
            body = await _read_body(request)
            if body is None:
                mutator.metrics.bad_requests.labels("(body)").inc()
                return _too_large()
            status, answer = await review(body)
            return Response(answer, status_code=status, media_type=JSON)

        app.add_api_route(path, handle, methods=["POST"])

    admission_route("/mutate-pod-creation", mutator.review)
    admission_route("/validate", validator.review)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        if ready():
            return Response(b'{"status":"ready"}', media_type=JSON)
        return Response(b'{"status":"not ready"}', status_code=503, media_type=JSON)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(mutator.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
