"""The server-side ledger: one row of wall-clock stamps per request, plus live counters.

Stamps are ``time.time()`` so rows join with the load generator's rows across processes on
one host. Rows live in a bounded buffer; what it had to drop is counted, never hidden.
Thread-safe: the CPU and GPU stages run in worker threads.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_CAPACITY = 100_000


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
    gpu_depth: int | None = None
    event_id: str = ""  # gradio: the queued call's event id (its profiler trace's key); "" for FastAPI


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
        self.in_gpu = 0
        self.dropped = 0

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
    def gpu_stage(self, row: LedgerRow) -> Iterator[None]:
        """Marks the GPU stage: depth counts requests inside it, this one included."""
        with self._lock:
            self.in_gpu += 1
            row.gpu_depth = self.in_gpu
        row.t_gpu_start = time.time()
        try:
            yield
        finally:
            row.t_gpu_end = time.time()
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
