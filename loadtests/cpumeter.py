"""The load generator's own CPU over a load point: the busiest load process, in % of one core.

A Python load process cannot use more than one core (the GIL), so that is where it saturates
and where a point's latencies start to measure the load generator instead of the server
(``ValidityRules.max_load_cpu_percent``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil


class CpuMeter:
    """CPU of the busiest of ``pids()`` between :meth:`start` and :meth:`stop`, in % of one core."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self._start: dict[int, tuple[float, float]] = {}

    def start(self) -> None:
        self._start = {pid: (self._cpu(pid), time.monotonic()) for pid in self._pids()}

    def stop(self) -> float | None:
        """The busiest process's share since :meth:`start`; None when none could be read."""
        busiest: float | None = None
        for pid, (cpu_start, t_start) in self._start.items():
            elapsed = time.monotonic() - t_start
            cpu = self._cpu(pid)
            if elapsed > 0 and cpu >= 0:
                share = 100.0 * (cpu - cpu_start) / elapsed
                busiest = share if busiest is None else max(busiest, share)
        return busiest

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return -1.0
        return float(times.user + times.system)
