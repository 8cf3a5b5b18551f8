"""The hand-rolled FastAPI adapter: the core behind an ``asyncio.Semaphore``.

``--lock-scope gpu`` (default) holds the semaphore around the GPU stage alone, so decoding
and encoding of other requests overlap it; ``--lock-scope request`` holds it from before
decode to after encode — exactly what Gradio's queue serialises. ``fastapi-naive`` has no
semaphore at all: the control that shows what GPU collisions cost. CPU stages run in worker
threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from servers.core import imaging
from servers.core.imaging import ImageError
from servers.core.ledger import LedgerRow
from servers.core.segmenter import LedgeredSegmenter
from servers.http_common import (
    REQUEST_ID_HEADER,
    ArrivalStamps,
    HealthState,
    RequestIdMiddleware,
    add_common_routes,
)
from servers.page import add_page_route

RAW_TYPES = ("image/", "application/octet-stream")
RETRY_AFTER_S = 1
DEFAULT_THREADS = 40  # the naive app's GPU-stage threads: as many as anyio's shared pool
BODY_SLACK_BYTES = 64 * 1024  # multipart headers and JSON framing around the image


class QueueFull(Exception):
    """More requests wait for the GPU than ``--max-queue`` allows; ``str()`` says so."""


class Admission:
    """``asyncio.Semaphore(limit)`` with a bounded line of waiters; stamps t_admit."""

    def __init__(self, limit: int, max_queue: int | None) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self._max_queue = max_queue
        self.waiting = 0

    @asynccontextmanager
    async def slot(self, row: LedgerRow) -> AsyncIterator[None]:
        if self._max_queue is not None and self._semaphore.locked() and self.waiting >= self._max_queue:
            raise QueueFull(
                f"server busy: more than {self._max_queue} requests wait for the GPU; retry later"
            )
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        row.t_admit = time.time()
        try:
            yield
        finally:
            self._semaphore.release()


class NoAdmission:
    """The naive control: everyone is admitted on arrival."""

    waiting = 0

    @asynccontextmanager
    async def slot(self, row: LedgerRow) -> AsyncIterator[None]:
        row.t_admit = row.t_recv
        yield


def create_app(
    service: LedgeredSegmenter,
    health: HealthState,
    *,
    concurrency: int | None,
    lock_scope: str,
    max_queue: int | None,
    mcp_host: str | None = None,
) -> FastAPI:
    """``concurrency=None`` builds the naive app (no semaphore). ``mcp_host``: serve the MCP tool
    at ``/mcp`` (the host the server binds, which decides the SDK's Host-header check)."""
    mcp_arrivals = ArrivalStamps()
    mcp_server = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a limiter belongs to the running event loop, so it is made here, not at import
        app.state.gpu_threads = CapacityLimiter(concurrency or DEFAULT_THREADS)
        async with mcp_server.session_manager.run() if mcp_server else contextlib.nullcontext():
            yield

    app = FastAPI(title="BiRefNet segmentation (FastAPI)", lifespan=lifespan)
    stamps = ArrivalStamps()
    if mcp_host is not None:
        from servers.mcp_tools import FASTAPI_PATH, McpArrivals

        app.add_middleware(McpArrivals, stamps=mcp_arrivals, path=FASTAPI_PATH)  # inside the id's
    app.add_middleware(RequestIdMiddleware, stamps=stamps, stamp_paths=("/segment",))
    admission = NoAdmission() if concurrency is None else Admission(concurrency, max_queue)
    add_common_routes(app, service.ledger, health, queued=lambda: admission.waiting)
    add_page_route(app)

    async def run_gpu(fn: Callable[..., object], *args: object) -> object:
        # the GPU stage gets threads of its own: holding the semaphore while waiting behind decode
        # and encode work for a slot in the shared worker pool would idle the GPU under overload
        return await to_thread.run_sync(partial(fn, *args), limiter=app.state.gpu_threads)

    async def segment(
        request_id: str,
        t_recv: float | None,
        endpoint: str,
        read: Callable[[], bytes],
        deliver: Callable[[bytes], bytes] | None = None,
    ) -> bytes:
        """The one admitted path to the core, for the routes and the MCP tool alike. Call once the
        body has been read: a middleware stamped ``t_recv`` at its last byte. ``deliver`` renders
        the answer (base64 JSON) inside the ledger span, as Gradio's does."""
        row = service.ledger.open(request_id, endpoint, t_recv)
        status = 500
        try:
            if lock_scope == "request":
                async with admission.slot(row):
                    png = await run_gpu(service.run, row, read)
            else:
                prepared = await run_in_threadpool(service.pre, row, read)
                async with admission.slot(row):
                    mask = await run_gpu(service.gpu, row, prepared)
                png = await run_in_threadpool(service.post, row, prepared, mask)
            answer = png if deliver is None else await run_in_threadpool(deliver, png)
            status = 200
            return answer
        except ImageError as exc:
            status = exc.status
            raise
        except QueueFull:
            status = 503
            raise
        finally:
            service.ledger.close(row, status)

    @app.exception_handler(ImageError)
    async def bad_image(request: Request, exc: ImageError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.post("/segment", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def segment_raw(request: Request) -> Response:
        """Raw image bytes as the body (or multipart field ``image``) -> PNG."""
        refuse_oversized_body(request, service.segmenter.limits.max_bytes)
        data = await read_image_body(request)
        request_id = request.headers[REQUEST_ID_HEADER]
        png = await segment(request_id, stamps.pop(request_id), "/segment", lambda: data)
        return Response(png, media_type="image/png")

    @app.post("/segment_b64", response_class=Response, responses={200: {"content": {"application/json": {}}}})
    async def segment_b64(request: Request) -> Response:
        """``{"image": "<base64 or data: URL>"}`` -> ``{"image": "<base64 PNG>", "request_id": ...}``."""
        refuse_oversized_body(request, service.segmenter.limits.max_bytes * 4 // 3)
        body = await request.body()
        # parsing and rendering megabytes of JSON are CPU work: worker threads, not the event loop
        encoded = await run_in_threadpool(image_field, body)
        request_id = request.headers[REQUEST_ID_HEADER]
        answer = await segment(
            request_id,
            stamps.pop(request_id),
            "/segment_b64",
            lambda: imaging.decode_base64(encoded),
            lambda png: render_b64_answer(png, request_id),
        )
        return Response(answer, media_type="application/json")

    if mcp_host is not None:
        from servers.mcp_tools import fastapi_mcp_server

        # the same body limit as /segment_b64
        max_body = service.segmenter.limits.max_bytes * 4 // 3 + BODY_SLACK_BYTES
        mcp_server = fastapi_mcp_server(segment, mcp_arrivals, host=mcp_host, max_body_bytes=max_body)
        app.router.routes.extend(mcp_server.streamable_http_app().routes)
    return app


def image_field(body: bytes) -> object:
    """The ``image`` field of a JSON body, or :class:`ImageError` saying what to send."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ImageError('body is not JSON: send {"image": "<base64 image>"}') from None
    if not isinstance(payload, dict) or "image" not in payload:
        raise ImageError('JSON body needs an "image" field: {"image": "<base64 image>"}')
    return payload["image"]


def render_b64_answer(png: bytes, request_id: str) -> bytes:
    return json.dumps({"image": imaging.encode_base64(png), "request_id": request_id}).encode()


def refuse_oversized_body(request: Request, image_limit: int) -> None:
    """413 from the declared length, before an oversized body is read into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > image_limit + BODY_SLACK_BYTES:
        raise ImageError(
            f"body is {int(declared) / 1e6:.1f} MB; images up to {image_limit / 1e6:.0f} MB are accepted "
            "(--max-mb): send a smaller file",
            status=413,
        )


async def read_image_body(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "application/octet-stream").lower()
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise ImageError('multipart body needs a file field named "image"')
        return await upload.read()
    if not content_type.startswith(RAW_TYPES):
        raise ImageError(
            f"Content-Type {content_type!r} is not an image: send the raw bytes as image/png, image/jpeg, "
            'image/webp or application/octet-stream, or a multipart field named "image"',
            status=415,
        )
    return await request.body()
