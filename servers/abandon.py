"""Noticing a client that has gone, so that no GPU time is spent on an answer nobody will read.

Once a request's body is read, the only message its ASGI ``receive`` can still deliver is
``http.disconnect`` (uvicorn sends it when the connection closes). :class:`ClientPresence`
watches for it in a task of its own: a request waiting for the GPU lock is cancelled out of
the wait at once (:meth:`ClientPresence.wait` turns that into :class:`ClientGone`), and the
core asks :meth:`ClientPresence.still_wanted` — from a worker thread — just before the GPU
stage. The FastAPI adapter uses it; Gradio has its own notion (its queue marks an event dead
when its SSE stream closes), read by ``servers/gradio_queue.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

from starlette.types import Receive

from servers.core.ledger import ClientGone

T = TypeVar("T")


class ClientPresence:
    """``async with ClientPresence(receive):`` around everything after the body is read. Without a
    ``receive`` (a transport that owns the connection, such as the MCP tool's) nothing is watched
    and the client counts as present throughout."""

    def __init__(self, receive: Receive | None) -> None:
        self._receive = receive
        self._gone = threading.Event()  # read by worker threads before the GPU stage
        self._request_task: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._waiting = False

    async def __aenter__(self) -> ClientPresence:
        self._request_task = asyncio.current_task()
        if self._receive is not None:
            self._watcher = asyncio.create_task(self._watch())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    def still_wanted(self) -> bool:
        return not self._gone.is_set()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` (the GPU lock) unless the client leaves first: then it is
        cancelled and :class:`ClientGone` raised. ``awaitable`` must be cancellation-safe, as
        ``asyncio.Semaphore.acquire`` is (a slot granted at the moment of cancelling is given
        back)."""
        if self.gone:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise ClientGone
        self._waiting = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            task = asyncio.current_task()
            # only our own cancel becomes ClientGone; anything else (shutdown) goes on unwinding
            if not self.gone or task is None or task.uncancel() > 0:
                raise
            raise ClientGone from None
        finally:
            self._waiting = False

    async def _watch(self) -> None:
        assert self._receive is not None
        while (await self._receive())["type"] != "http.disconnect":
            pass  # a late body message: nothing to do with it
        self._gone.set()
        if self._waiting and self._request_task is not None:
            self._request_task.cancel()
