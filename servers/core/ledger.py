"""The server-side ledger: one row of wall-clock stamps per request, plus live counters.

Stamps are ``time.time()`` so rows join with the load generator's rows across processes on
one host. Rows live in a bounded buffer; what it had to drop is counted, never hidden.
Thread-safe: the CPU and GPU stages run in worker threads. A row's ``stage`` is the last
stage the request entered, so a failed or abandoned row says how far it got (and whether
the GPU ran for it: ``t_gpu_start`` is set). Requests batched into one GPU call share that
call's interval, ``batch_id`` and ``batch_size``; ``gpu_depth`` and ``in_gpu`` count GPU
calls, not requests, so batch-mates never read as colliding with each other.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

DEFAULT_CAPACITY = 100_000
# nginx's "client closed request": the client went away before its answer was sent
CLIENT_GONE = 499


class Stage(StrEnum):
    """Where a request can be; a row's ``stage`` names the last one it entered (FastAPI's GPU
    lock scope queues after ``pre``; Gradio's queue and the request lock scope before it)."""

    RECEIVED = "received"  # body read, nothing run yet
    QUEUED = "queued"  # waiting for the GPU lock (FastAPI) or in Gradio's queue
    PRE = "pre"  # decode, resize, normalise
    GPU = "gpu"
    POST = "post"  # mask resize, compose, encode
    DONE = "done"  # the answer is rendered


class ClientGone(Exception):
    """The client went away before the GPU stage: the stage is skipped, the row closed as 499."""


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass
class LedgerRow:
    request_id: str
    endpoint: str
    t_recv: float
    status: int = 0
    t_admit: float | None = None
    t_gpu_start: float | None = None
    t_gpu_end: float | None = None
    t_send: float | None = None
    pre_s: float | None = None
    post_s: float | None = None
    gpu_depth: int | None = None  # GPU calls in flight at t_gpu_start, this request's included
    stage: str = Stage.RECEIVED
    event_id: str = ""  # gradio: the queued call's event id (its profiler trace's key); "" for FastAPI
    batch_size: int | None = None  # requests in this request's GPU call (1: unbatched)
    batch_id: int | None = None  # that GPU call, numbered from 1 in this server process


class Ledger:
    def __init__(
        self,
        peak_memory: Callable[[], int | None],
        reset_peak_memory: Callable[[], None],
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._lock = threading.Lock()
        self._rows: deque[LedgerRow] = deque(maxlen=capacity)
        self._peak_memory = peak_memory
        self._reset_peak_memory = reset_peak_memory
        self.in_flight = 0
        self.in_gpu = 0  # GPU calls in flight
        self.dropped = 0
        self._gpu_calls = itertools.count(1)

    def open(self, request_id: str, endpoint: str, t_recv: float | None = None) -> LedgerRow:
        with self._lock:
            self.in_flight += 1
        return LedgerRow(request_id, endpoint, time.time() if t_recv is None else t_recv)

    def close(self, row: LedgerRow, status: int) -> None:
        row.t_send = time.time()
        row.status = status
        with self._lock:
            self.in_flight -= 1
            if len(self._rows) == self._rows.maxlen:
                self.dropped += 1
            self._rows.append(row)

    @contextmanager
    def gpu_stage(self, rows: Sequence[LedgerRow]) -> Iterator[None]:
        """Marks one GPU call made for ``rows`` (a batch, or one request): they share its interval
        and its id; depth counts GPU calls in flight, this one included."""
        with self._lock:
            self.in_gpu += 1
            depth = self.in_gpu
            batch_id = next(self._gpu_calls)
        t_gpu_start = time.time()
        for row in rows:
            row.stage = Stage.GPU
            row.gpu_depth = depth
            row.batch_size = len(rows)
            row.batch_id = batch_id
            row.t_gpu_start = t_gpu_start
        try:
            yield
        finally:
            t_gpu_end = time.time()
            for row in rows:
                row.t_gpu_end = t_gpu_end
            with self._lock:
                self.in_gpu -= 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            taken = self._take()
        return self._serialise(taken)

    def reset(self) -> dict[str, Any]:
        """Clear rows and the peak-memory counter; returns what was cleared, taken atomically
        so that a request completing during a reset under load is never lost."""
        with self._lock:
            taken = self._take()
            self._rows.clear()
            self.dropped = 0
            self._reset_peak_memory()
        return self._serialise(taken)

    def _take(self) -> tuple[list[LedgerRow], dict[str, Any]]:
        """Under the lock: only copy references; serialising 100k rows would stall the stages."""
        counters = {
            "in_flight": self.in_flight,
            "in_gpu": self.in_gpu,
            "dropped": self.dropped,
            "peak_gpu_bytes": self._peak_memory(),
        }
        return list(self._rows), counters

    @staticmethod
    def _serialise(taken: tuple[list[LedgerRow], dict[str, Any]]) -> dict[str, Any]:
        rows, counters = taken
        return {"requests": [asdict(row) for row in rows], **counters}
