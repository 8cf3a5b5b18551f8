"""The FastAPI server's line to the GPU: places in line, and the semaphore behind them.

A request takes its place in line on arrival (before any decode) and leaves it when admitted
into a GPU call (or refused, or abandoned), so ``waiting`` counts what Gradio's queue counts:
accepted, not yet admitted. ``asyncio.Semaphore(--concurrency)`` bounds the GPU calls in
flight, each holding one request or, with ``--batch``, a batch of them. ``fastapi-naive``
admits everyone on arrival (:class:`NoAdmission`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from servers.abandon import ClientPresence
from servers.core.ledger import LedgerRow, Stage
from servers.limits import queue_full_detail


class QueueFull(Exception):
    """More requests wait for the GPU than ``--max-queue`` allows; ``str()`` says so."""


@dataclass
class Ticket:
    """A place in line: held from arrival until admitted (or refused, or abandoned)."""

    in_line: bool = True


class Admission:
    """``asyncio.Semaphore(limit)`` GPU calls behind a line of at most ``max_queue`` requests.

    Full means every GPU call admitted, each with a full batch (``batch`` requests), and
    ``max_queue`` more in line.
    """

    def __init__(self, limit: int, max_queue: int | None, batch: int = 1) -> None:
        self.gpu_calls = asyncio.Semaphore(limit)
        self._max_queue = max_queue
        self._capacity = None if max_queue is None else limit * batch + max_queue
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

    def admit(self, row: LedgerRow, ticket: Ticket, at: float | None = None) -> None:
        """Out of line, into a GPU call (whose semaphore slot the caller holds) at ``at`` (default: now;
        a batch's requests share one moment)."""
        ticket.in_line = False
        self.waiting -= 1
        self._admitted += 1
        row.t_admit = time.time() if at is None else at

    def leave(self, requests: int = 1) -> None:
        """``requests`` admitted requests' GPU call has ended."""
        self._admitted -= requests

    @asynccontextmanager
    async def slot(self, row: LedgerRow, ticket: Ticket, presence: ClientPresence) -> AsyncIterator[None]:
        """Admitted alone: holds a semaphore slot. Raises :class:`ClientGone` if the client leaves first."""
        row.stage = Stage.QUEUED
        await presence.wait(self.gpu_calls.acquire())
        self.admit(row, ticket)
        try:
            yield
        finally:
            self.leave()
            self.gpu_calls.release()


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
