"""How a FastAPI request reaches its GPU call: alone (:class:`Unbatched`) or batched (:class:`Batcher`).

Both take a request in line and the work its lock scope puts under the lock — a prepared image
(``--lock-scope gpu``: the GPU stage alone) or the request's body reader (``request``: decode,
GPU and encode) — and return what that work yields (a mask, or the encoded PNG).

The dynamic batcher (``--batch B``, ``--batch-wait-ms W``): a batch leaves for the GPU once a GPU
call slot (``--concurrency``) is free and either B requests wait or the oldest has waited W,
whichever comes first. The slot is taken before the batch is filled, so requests that arrive
while the GPU is busy join the next call without any timer: under load batches fill on their
own, and W only delays a request that finds the GPU idle with fewer than B in line. Each batch
is ONE call of the core's batch stage in a GPU thread (``LedgeredSegmenter.gpu_batch``, or
``run_batch``: every request's decode, then one GPU call, then every request's encode, all under
the lock), and each request gets its own outcome. A client that leaves while its request waits in
line is taken out at once (never run); one that leaves after its batch was taken is dropped from
the call by the core's check just before the GPU stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from servers.abandon import ClientPresence
from servers.admission import Admission, NoAdmission, Ticket
from servers.core.ledger import ClientGone, LedgerRow, Stage

W = TypeVar("W")  # the work under the lock: a prepared image, or the body reader
R = TypeVar("R")  # what it yields: a mask, or the encoded PNG

# runs a core stage in a GPU thread: (stage, *args) -> its result
InGpuThread = Callable[..., Awaitable[Any]]
# the core's stage for one request: (row, work, still_wanted) -> result
OneStage = Callable[[LedgerRow, W, Callable[[], bool]], R]
# the core's stage for a batch: (rows, works, still_wanted per request) -> one outcome per request
BatchStage = Callable[
    [Sequence[LedgerRow], Sequence[W], Sequence[Callable[[], bool]]], Sequence[R | Exception]
]


class Unbatched(Generic[W, R]):
    """Each request is its own GPU call, under the admission's semaphore (or none: the naive app)."""

    def __init__(
        self, admission: Admission | NoAdmission, stage: OneStage[W, R], in_gpu_thread: InGpuThread
    ) -> None:
        self._admission = admission
        self._stage = stage
        self._in_gpu_thread = in_gpu_thread

    async def submit(self, row: LedgerRow, ticket: Ticket, work: W, presence: ClientPresence) -> R:
        async with self._admission.slot(row, ticket, presence):
            result: R = await self._in_gpu_thread(self._stage, row, work, presence.still_wanted)
            return result


@dataclass(eq=False)
class Waiting(Generic[W, R]):
    """A request in the batcher's line."""

    row: LedgerRow
    ticket: Ticket
    work: W
    still_wanted: Callable[[], bool]
    outcome: asyncio.Future[R]
    joined: float = field(default_factory=time.monotonic)


class Batcher(Generic[W, R]):
    """The dynamic batcher; :meth:`serve` runs for the app's lifetime (started in its lifespan)."""

    def __init__(
        self,
        admission: Admission,
        stage: BatchStage[W, R],
        in_gpu_thread: InGpuThread,
        *,
        size: int,
        wait_s: float,
    ) -> None:
        if size < 2:
            raise ValueError(f"a batcher needs a batch size >= 2, not {size}")
        self._admission = admission
        self._stage = stage
        self._in_gpu_thread = in_gpu_thread
        self.size = size
        self.wait_s = wait_s
        self._line: list[Waiting[W, R]] = []
        self._arrived = asyncio.Event()
        self._calls: set[asyncio.Task[None]] = set()

    async def submit(self, row: LedgerRow, ticket: Ticket, work: W, presence: ClientPresence) -> R:
        row.stage = Stage.QUEUED
        waiting: Waiting[W, R] = Waiting(
            row, ticket, work, presence.still_wanted, asyncio.get_running_loop().create_future()
        )
        self._line.append(waiting)
        self._arrived.set()
        try:
            # shielded: a client that leaves cancels its wait, never the outcome its batch will set
            return await presence.wait(asyncio.shield(waiting.outcome))
        except ClientGone:
            if waiting in self._line:  # not taken yet: out of line, never run
                self._line.remove(waiting)
                raise
        # taken into a GPU call before the client left: that call asks the client just before it runs
        return await waiting.outcome

    async def serve(self) -> None:
        while True:
            while not self._line:
                self._arrived.clear()
                await self._arrived.wait()
            await self._admission.gpu_calls.acquire()
            batch = await self._fill()
            if not batch:  # everyone in line left meanwhile
                self._admission.gpu_calls.release()
                continue
            t_admit = time.time()
            for waiting in batch:
                self._admission.admit(waiting.row, waiting.ticket, t_admit)
            call = asyncio.create_task(self._call(batch))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _fill(self) -> list[Waiting[W, R]]:
        """Up to ``size`` requests from the line, once that many wait or the oldest has waited ``wait_s``."""
        while self._line and len(self._line) < self.size:
            left_s = self._line[0].joined + self.wait_s - time.monotonic()
            if left_s <= 0:
                break
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left_s)
        batch, self._line = self._line[: self.size], self._line[self.size :]
        return batch

    async def _call(self, batch: list[Waiting[W, R]]) -> None:
        """One GPU call for ``batch`` (its semaphore slot already held), then each request's outcome."""
        try:
            outcomes: Sequence[R | Exception] = await self._in_gpu_thread(
                self._stage,
                [waiting.row for waiting in batch],
                [waiting.work for waiting in batch],
                [waiting.still_wanted for waiting in batch],
            )
        except Exception as exc:  # not any one request's failure: the call's, so all of theirs
            outcomes = [exc] * len(batch)
        finally:
            self._admission.leave(len(batch))
            self._admission.gpu_calls.release()
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                waiting.outcome.set_exception(outcome)
            else:
                waiting.outcome.set_result(outcome)
