"""What both server kinds share over HTTP: request ids, health, the ledger routes.

Both apps are FastAPI applications (``gradio.Server`` subclasses FastAPI), so the same
routes and the same ASGI middleware serve both, and the load generator sees one protocol
for everything that is not the inference call itself.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servers.core.ledger import Ledger, new_request_id

REQUEST_ID_HEADER = "x-request-id"


@dataclass
class HealthState:
    """``/healthz`` answers 503 until the model is loaded and warmed up, then ``info``."""

    info: dict[str, Any] = field(default_factory=dict)
    ready: bool = False


class ArrivalStamps:
    """t_recv of requests, keyed by request id, taken by the middleware and claimed by the handler
    (for Gradio, the queued function that runs later).

    Bounded: a call that never reaches its handler (rejected, cancelled) must not grow it.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._stamps: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity

    def put(self, request_id: str, t_recv: float) -> None:
        self._stamps[request_id] = t_recv
        while len(self._stamps) > self._capacity:
            self._stamps.popitem(last=False)

    def pop(self, request_id: str) -> float | None:
        return self._stamps.pop(request_id, None)

    def __len__(self) -> int:
        return len(self._stamps)


class RequestIdMiddleware:
    """Gives every HTTP request an ``X-Request-ID`` (the client's, or a new one) and echoes it.

    For paths in ``stamp_paths`` (prefixes) it also records t_recv — the moment the app has
    read the whole body — so both adapters start the measured span at the same point: uploads
    stay outside it, parsing the request inside.
    """

    def __init__(self, app: ASGIApp, stamps: ArrivalStamps | None = None, stamp_paths: tuple[str, ...] = ()):
        self.app = app
        self.stamps = stamps
        self.stamp_paths = stamp_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = REQUEST_ID_HEADER.encode()
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        request_id = next((v.decode("latin-1").strip() for k, v in headers if k == header), "")
        if not request_id:  # absent or empty: a new id, and the only one the app will see
            request_id = new_request_id()
            headers = [(k, v) for k, v in headers if k != header] + [(header, request_id.encode())]
            scope = {**scope, "headers": headers}
        stamping = (
            self.stamps is not None
            and scope["method"] == "POST"
            and scope["path"].startswith(self.stamp_paths)
        )
        if stamping and self.stamps is not None:
            receive = stamp_at_last_byte(receive, self.stamps, request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                if stamping and message["status"] >= 400 and self.stamps is not None:
                    self.stamps.pop(request_id)  # rejected before any handler could take it
                message = {**message, "headers": [*message.get("headers", []), (header, request_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def stamp_at_last_byte(receive: Receive, stamps: ArrivalStamps, request_id: str) -> Receive:
    """``receive`` that records the moment the request's last body byte arrives as its t_recv."""

    async def wrapped() -> Message:
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            stamps.put(request_id, time.time())
        return message

    return wrapped


def add_common_routes(
    app: FastAPI,
    ledger: Ledger,
    health: HealthState,
    queued: Callable[[], int],
    held: Callable[[], dict[str, int]],
) -> None:
    """``queued``: requests accepted but not yet admitted to the guarded section (Gradio's queue,
    the FastAPI semaphore's waiters), so a load generator can tell when a server is idle.
    ``held``: what the server keeps between requests and must keep bounded (arrival stamps;
    on Gradio its sessions, queue leftovers and temp files), so a soak can watch it."""

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        if not health.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok", **health.info})

    @app.get("/ledger")
    def get_ledger(request_id: str | None = None) -> JSONResponse:
        """``?request_id=`` keeps only that request's rows (the page shows its own timings)."""
        snapshot = ledger.snapshot()
        if request_id is not None:
            snapshot["requests"] = [row for row in snapshot["requests"] if row["request_id"] == request_id]
        # the model travels with the rows: a ledger never reads as real-GPU evidence by accident
        return JSONResponse(
            {**snapshot, "queued": queued(), "held": held(), "model": health.info.get("model")}
        )

    @app.post("/ledger/reset")
    def reset_ledger() -> JSONResponse:
        return JSONResponse(
            {
                "ok": True,
                **ledger.reset(),
                "queued": queued(),
                "held": held(),
                "model": health.info.get("model"),
            }
        )
