"""The hand-rolled FastAPI adapter: the core behind an ``asyncio.Semaphore``.

``--lock-scope gpu`` (default) holds the semaphore around the GPU stage alone, so decoding
and encoding of other requests overlap it; ``--lock-scope request`` holds it from before
decode to after encode — exactly what Gradio's queue serialises. ``fastapi-naive`` has no
semaphore at all: the control that shows what GPU collisions cost. CPU stages run in worker
threads, never on the event loop. ``--batch B`` puts a dynamic batcher (``servers/batching.py``)
in front of the GPU calls; the semaphore then bounds batches.

A request takes its place in line as soon as its body is read, before any parsing or
decoding (``--max-queue`` full: 503 at once); a client that goes away while it waits, or
before its GPU stage, costs no GPU time (ledger status 499); a GPU out of memory is a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive

from servers.abandon import ClientPresence
from servers.admission import Admission, NoAdmission, QueueFull
from servers.batching import Batcher, Unbatched
from servers.core import imaging
from servers.core.backends.base import GpuOutOfMemory
from servers.core.imaging import ImageError
from servers.core.ledger import CLIENT_GONE, ClientGone, Stage
from servers.core.segmenter import LedgeredSegmenter
from servers.http_common import (
    REQUEST_ID_HEADER,
    ArrivalStamps,
    HealthState,
    RequestIdMiddleware,
    add_common_routes,
)
from servers.limits import (
    QUEUE_FULL_HEADERS,
    RETRY_AFTER_S,
    BodyLimitMiddleware,
    QueueFullMiddleware,
    image_body_limits,
)
from servers.page import add_page_route

RAW_TYPES = ("image/", "application/octet-stream")
DEFAULT_THREADS = 40  # the naive app's GPU-stage threads: as many as anyio's shared pool
SEGMENT_PATHS = ("/segment",)


def create_app(
    service: LedgeredSegmenter,
    health: HealthState,
    *,
    concurrency: int | None,
    lock_scope: str,
    max_queue: int | None,
    batch: int = 1,
    batch_wait_ms: float = 0.0,
    mcp_host: str | None = None,
) -> FastAPI:
    """``concurrency=None`` builds the naive app (no semaphore). ``batch`` > 1: the dynamic batcher
    (up to ``batch`` requests per GPU call, waiting at most ``batch_wait_ms`` for them). ``mcp_host``:
    serve the MCP tool at ``/mcp`` (the host the server binds, which decides the SDK's Host-header
    check)."""
    mcp_arrivals = ArrivalStamps()
    mcp_server = None
    stamps = ArrivalStamps()
    admission = NoAdmission() if concurrency is None else Admission(concurrency, max_queue, batch)

    async def run_gpu(fn: Callable[..., Any], *args: object) -> Any:
        # the GPU stage gets threads of its own: holding the semaphore while waiting behind decode
        # and encode work for a slot in the shared worker pool would idle the GPU under overload
        return await to_thread.run_sync(partial(fn, *args), limiter=app.state.gpu_threads)

    # the lock scope decides what runs under the lock: the GPU stage, or decode + GPU + encode
    whole_request = lock_scope == "request"
    line: Batcher[Any, Any] | Unbatched[Any, Any]
    if batch > 1:
        if not isinstance(admission, Admission):
            raise ValueError("the naive app has no line to batch: --batch needs a semaphore")
        batch_stage = service.run_batch if whole_request else service.gpu_batch
        line = Batcher(admission, batch_stage, run_gpu, size=batch, wait_s=batch_wait_ms / 1000)
    else:
        line = Unbatched(admission, service.run if whole_request else service.gpu, run_gpu)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a limiter belongs to the running event loop, so it is made here, not at import
        app.state.gpu_threads = CapacityLimiter(concurrency or DEFAULT_THREADS)
        batcher = asyncio.create_task(line.serve()) if isinstance(line, Batcher) else None
        try:
            async with mcp_server.session_manager.run() if mcp_server else contextlib.nullcontext():
                yield
        finally:
            if batcher is not None:
                batcher.cancel()
                await asyncio.gather(batcher, return_exceptions=True)

    app = FastAPI(title="BiRefNet segmentation (FastAPI)", lifespan=lifespan)
    if mcp_host is not None:
        from servers.mcp_tools import FASTAPI_PATH, McpArrivals

        app.add_middleware(McpArrivals, stamps=mcp_arrivals, path=FASTAPI_PATH)  # inside the id's
    max_image_bytes = service.segmenter.limits.max_bytes
    raw_limit, b64_limit = image_body_limits(max_image_bytes)
    # the last added is the outermost: request ids first, so every refusal carries one
    app.add_middleware(
        BodyLimitMiddleware,
        # any other route: the largest body a route here accepts (an image as base64 JSON)
        limits=(("/segment_b64", b64_limit), ("/segment", raw_limit), ("/", b64_limit)),
        hint=f"images up to {max_image_bytes / 1e6:.0f} MB are accepted (--max-mb): send a smaller file",
    )
    app.add_middleware(QueueFullMiddleware, paths=SEGMENT_PATHS, is_full=admission.full, max_queue=max_queue)
    app.add_middleware(RequestIdMiddleware, stamps=stamps, stamp_paths=SEGMENT_PATHS)
    add_common_routes(
        app,
        service.ledger,
        health,
        queued=lambda: admission.waiting,
        held=lambda: {"arrival_stamps": len(stamps)},
    )
    add_page_route(app)

    async def segment(
        request_id: str,
        t_recv: float | None,
        endpoint: str,
        read: Callable[[], bytes],
        deliver: Callable[[bytes], bytes] | None = None,
        receive: Receive | None = None,
    ) -> bytes:
        """The one admitted path to the core, for the routes and the MCP tool alike. Call once the
        body has been read: a middleware stamped ``t_recv`` at its last byte. ``read`` parses and
        decodes (timed as pre-processing, after the place in line is taken); ``deliver`` renders
        the answer inside the ledger span, as Gradio's does. ``receive`` (the request's ASGI
        receive) lets an abandoned request leave before its GPU stage; without it (the MCP tool,
        whose transport owns the connection) the request runs to its end."""
        # a request that cannot take a place in line is refused before any work, and (as with
        # Gradio's full queue) before it has a ledger row
        with admission.join() as ticket:
            row = service.ledger.open(request_id, endpoint, t_recv)
            status = 500
            try:
                async with ClientPresence(receive) as presence:
                    if whole_request:
                        png = await line.submit(row, ticket, read, presence)
                    else:
                        prepared = await run_in_threadpool(service.pre, row, read)
                        mask = await line.submit(row, ticket, prepared, presence)
                        png = await run_in_threadpool(service.post, row, prepared, mask)
                    answer = png if deliver is None else await run_in_threadpool(deliver, png)
                    row.stage = Stage.DONE
                    # an answer finished after its client left reaches nobody: its GPU time was waste
                    status = CLIENT_GONE if presence.gone else 200
                return answer
            except ImageError as exc:
                status = exc.status
                raise
            except GpuOutOfMemory:
                status = 503
                raise
            except ClientGone:
                status = CLIENT_GONE
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
            headers={k.decode(): v.decode() for k, v in QUEUE_FULL_HEADERS},
        )

    @app.exception_handler(GpuOutOfMemory)
    async def out_of_memory(request: Request, exc: GpuOutOfMemory) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> Response:
        # nobody reads it; a status is still owed to the ASGI server
        return Response(status_code=CLIENT_GONE)

    @app.post("/segment", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def segment_raw(request: Request) -> Response:
        """Raw image bytes as the body (or multipart field ``image``) -> PNG."""
        data = await read_image_body(request)
        request_id = request.headers[REQUEST_ID_HEADER]
        png = await segment(
            request_id, stamps.pop(request_id), "/segment", lambda: data, receive=request.receive
        )
        return Response(png, media_type="image/png")

    @app.post("/segment_b64", response_class=Response, responses={200: {"content": {"application/json": {}}}})
    async def segment_b64(request: Request) -> Response:
        """``{"image": "<base64 or data: URL>"}`` -> ``{"image": "<base64 PNG>", "request_id": ...}``."""
        body = await request.body()
        request_id = request.headers[REQUEST_ID_HEADER]
        answer = await segment(
            request_id,
            stamps.pop(request_id),
            "/segment_b64",
            # parsing megabytes of JSON is CPU work: a worker thread (in pre), not the event loop
            lambda: imaging.decode_base64(image_field(body)),
            lambda png: render_b64_answer(png, request_id),
            receive=request.receive,
        )
        return Response(answer, media_type="application/json")

    if mcp_host is not None:
        from servers.mcp_tools import fastapi_mcp_server

        # the same body limit as /segment_b64
        mcp_server = fastapi_mcp_server(segment, mcp_arrivals, host=mcp_host, max_body_bytes=b64_limit)
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
