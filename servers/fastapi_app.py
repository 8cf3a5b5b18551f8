"""The hand-rolled FastAPI adapter: the core behind an ``asyncio.Semaphore``.

``--lock-scope gpu`` (default) holds the semaphore around the GPU stage alone, so decoding
and encoding of other requests overlap it; ``--lock-scope request`` holds it from before
decode to after encode — exactly what Gradio's queue serialises. ``fastapi-naive`` has no
semaphore at all: the control that shows what GPU collisions cost. CPU stages run in worker
threads, never on the event loop.

A request takes its place in line as soon as its body is read, before any parsing or
decoding (``--max-queue`` full: 503 at once); a client that goes away while it waits, or
before its GPU stage, costs no GPU time (ledger status 499); a GPU out of memory is a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive

from servers.abandon import ClientPresence
from servers.core import imaging
from servers.core.backends.base import GpuOutOfMemory
from servers.core.imaging import ImageError
from servers.core.ledger import CLIENT_GONE, ClientGone, LedgerRow, Stage
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
    queue_full_detail,
)
from servers.page import add_page_route

RAW_TYPES = ("image/", "application/octet-stream")
DEFAULT_THREADS = 40  # the naive app's GPU-stage threads: as many as anyio's shared pool
SEGMENT_PATHS = ("/segment",)


class QueueFull(Exception):
    """More requests wait for the GPU than ``--max-queue`` allows; ``str()`` says so."""


@dataclass
class Ticket:
    """A place in line: held from arrival until admitted (or refused, or abandoned)."""

    in_line: bool = True


class Admission:
    """``asyncio.Semaphore(limit)`` behind a line of at most ``max_queue`` requests.

    A request joins the line on arrival (before any decode) and leaves it when admitted, so
    ``waiting`` counts what Gradio's queue counts: accepted, not yet admitted. Full means
    ``limit`` admitted and ``max_queue`` in line.
    """

    def __init__(self, limit: int, max_queue: int | None) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self._max_queue = max_queue
        self._capacity = None if max_queue is None else limit + max_queue
        self._admitted = 0
        self.waiting = 0

    def full(self) -> bool:
        return self._capacity is not None and self.waiting + self._admitted >= self._capacity

    @contextmanager
    def join(self) -> Iterator[Ticket]:
        if self.full():
            raise QueueFull(queue_full_detail(self._max_queue))
        ticket = Ticket()
        self.waiting += 1
        try:
            yield ticket
        finally:
            if ticket.in_line:
                self.waiting -= 1

    @asynccontextmanager
    async def slot(self, row: LedgerRow, ticket: Ticket, presence: ClientPresence) -> AsyncIterator[None]:
        """Admitted: holds the semaphore. Raises :class:`ClientGone` if the client leaves first."""
        row.stage = Stage.QUEUED
        await presence.wait(self._semaphore.acquire())
        ticket.in_line = False
        self.waiting -= 1
        self._admitted += 1
        row.t_admit = time.time()
        try:
            yield
        finally:
            self._admitted -= 1
            self._semaphore.release()


class NoAdmission:
    """The naive control: everyone is admitted on arrival."""

    waiting = 0

    def full(self) -> bool:
        return False

    @contextmanager
    def join(self) -> Iterator[Ticket]:
        yield Ticket(in_line=False)

    @asynccontextmanager
    async def slot(self, row: LedgerRow, ticket: Ticket, presence: ClientPresence) -> AsyncIterator[None]:
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
    admission = NoAdmission() if concurrency is None else Admission(concurrency, max_queue)
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
                    if lock_scope == "request":
                        async with admission.slot(row, ticket, presence):
                            png = await run_gpu(service.run, row, read, presence.still_wanted)
                    else:
                        prepared = await run_in_threadpool(service.pre, row, read)
                        async with admission.slot(row, ticket, presence):
                            mask = await run_gpu(service.gpu, row, prepared, presence.still_wanted)
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
