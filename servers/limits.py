"""Refusals at the HTTP edge, before a request costs anything: body size and a full queue.

Both are ASGI middleware, so they hold for both server kinds and for Gradio's own routes
(``/gradio_api/upload``, ``/gradio_api/call/*``, ``/gradio_api/queue/join``), which read
bodies whole and unbounded. :class:`BodyLimitMiddleware` counts body bytes as they arrive,
whatever the framing (Content-Length, chunked, streamed), and answers 413 the moment a body
passes its route's limit, so no more than the limit plus one chunk is ever held.
:class:`QueueFullMiddleware` answers 503 with ``Retry-After`` before the body of a call that
could not be queued is even read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# multipart headers and JSON framing around an image
BODY_SLACK_BYTES = 64 * 1024
RETRY_AFTER_S = 1


def image_body_limits(max_image_bytes: int) -> tuple[int, int]:
    """(raw or multipart image body, base64 image in JSON) limits for ``--max-mb``."""
    return max_image_bytes + BODY_SLACK_BYTES, max_image_bytes * 4 // 3 + BODY_SLACK_BYTES


async def send_json(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """Raised from ``receive`` once the body passes its limit: the app's read stops there."""


class BodyLimitMiddleware:
    """413 for a body over its route's limit: ``limits`` is (path prefix, bytes), first match
    wins (put longer prefixes first); paths matching none are not limited. ``hint`` ends the
    message (what the sender can do)."""

    def __init__(self, app: ASGIApp, limits: Sequence[tuple[str, int]], hint: str) -> None:
        self.app = app
        self.limits = tuple(limits)
        self.hint = hint

    def limit_for(self, path: str) -> int | None:
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > limit:
            await self.refuse(send, f"body is {int(declared) / 1e6:.1f} MB", scope["path"], limit)
            return
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's own answer to the aborted read gives way to the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            # the rest of the body is read and discarded by uvicorn, nothing is kept
            await self.refuse(send, "body passed its limit", scope["path"], limit)

    async def refuse(self, send: Send, what: str, path: str, limit: int) -> None:
        await send_json(send, 413, f"{what}; the limit on {path} is {limit / 1e6:.1f} MB: {self.hint}")


def queue_full_detail(max_queue: int | None) -> str:
    return f"server busy: more than {max_queue} requests wait for the GPU; retry later"


QUEUE_FULL_HEADERS = ((b"retry-after", str(RETRY_AFTER_S).encode()),)


class QueueFullMiddleware:
    """503 + ``Retry-After`` for a call on ``paths`` (prefixes, POST) while ``is_full()``,
    before its body is read. The adapters check again once they take a place in line (a
    race between this check and that place ends in the same 503)."""

    def __init__(
        self, app: ASGIApp, paths: tuple[str, ...], is_full: Callable[[], bool], max_queue: int | None
    ) -> None:
        self.app = app
        self.paths = paths
        self.is_full = is_full
        self.max_queue = max_queue

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(self.paths)
            and self.is_full()
        ):
            await send_json(send, 503, queue_full_detail(self.max_queue), QUEUE_FULL_HEADERS)
            return
        await self.app(scope, receive, send)
