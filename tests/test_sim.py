"""``servers/core/backends/sim.py``: processor sharing, simulated memory and its capacity."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from servers.core.backends.base import GpuOutOfMemory
from servers.core.backends.sim import BASE_MEMORY_BYTES, MEMORY_PER_IMAGE_BYTES, SimBackend

SERVICE_S = 0.2


def one_image(sim: SimBackend, images: int = 1) -> np.ndarray:
    return np.zeros((images, 3, sim.input_size, sim.input_size), np.float32)


def overlapping(sim: SimBackend, calls: int) -> list[float]:
    """Durations of ``calls`` infer calls released together."""
    barrier = threading.Barrier(calls)
    durations: list[float] = []

    def timed() -> None:
        barrier.wait()
        started = time.perf_counter()
        sim.infer(one_image(sim))
        durations.append(time.perf_counter() - started)

    threads = [threading.Thread(target=timed) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return durations


def test_overlapping_calls_share_the_device() -> None:
    sim = SimBackend(service_ms=SERVICE_S * 1000)
    started = time.perf_counter()
    sim.infer(one_image(sim))
    alone = time.perf_counter() - started
    durations = overlapping(sim, 3)
    # bounds a busy box cannot break: a call never finishes early (virtual time only advances
    # with the wall clock), and the device's work is conserved, so three calls that overlap
    # keep it busy for three service times; a late thread start only lengthens the others
    assert alone >= SERVICE_S * 0.95
    assert max(durations) >= 3 * SERVICE_S * 0.95
    assert sum(durations) >= 1.5 * 3 * SERVICE_S  # they did overlap: alone, the sum would be 3 x
    assert sim.peak_memory_bytes() == sim.memory_in_use(3) > SimBackend(0).peak_memory_bytes()


def test_memory_capacity_refuses_what_does_not_fit() -> None:
    capacity = BASE_MEMORY_BYTES + 2 * MEMORY_PER_IMAGE_BYTES
    # long enough calls that four threads released together overlap even on a busy box
    sim = SimBackend(service_ms=1000, capacity_bytes=capacity)
    assert sim.images_that_fit() == 2 and "(2 images)" in sim.info.detail
    with pytest.raises(GpuOutOfMemory, match="ran out of memory"):
        sim.infer(one_image(sim, images=3))
    errors: list[Exception] = []

    def call() -> None:
        try:
            sim.infer(one_image(sim))
        except GpuOutOfMemory as exc:
            errors.append(exc)

    barrier = threading.Barrier(4)
    threads = [threading.Thread(target=lambda: (barrier.wait(), call())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # two fit at a time; the ones that found it full were refused, the device is free again
    assert 1 <= len(errors) <= 2 and sim.peak_memory_bytes() <= capacity
    sim.infer(one_image(sim, images=2))


def test_a_capacity_that_holds_no_image_is_refused() -> None:
    with pytest.raises(ValueError, match="holds no image"):
        SimBackend(capacity_bytes=BASE_MEMORY_BYTES)
