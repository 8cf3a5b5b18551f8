"""``servers/core/backends/sim.py``: processor sharing, simulated memory and its capacity, and a
measured GPU profile replayed (in-process, and through a real server's ledger)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from servers.core.backends.base import GpuOutOfMemory
from servers.core.backends.sim import BASE_MEMORY_BYTES, MEMORY_PER_IMAGE_BYTES, ProfiledDevice, SimBackend
from servers.core.gpu_profile import (
    batch_service_s,
    load_profile,
    memory_in_flight_bytes,
    overlap_slowdown,
    resolve_profile_path,
)
from tests.helpers import fastapi_http, server_state
from tests.helpers.common import PHOTO, StartServer, burst

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
    assert sim.peak_memory_bytes() == sim.device.memory_bytes([1, 1, 1]) > SimBackend(0).peak_memory_bytes()


def test_memory_capacity_refuses_what_does_not_fit() -> None:
    capacity = BASE_MEMORY_BYTES + 2 * MEMORY_PER_IMAGE_BYTES
    # long enough calls that four threads released together overlap even on a busy box
    sim = SimBackend(service_ms=1000, capacity_bytes=capacity)
    assert "(2 images)" in sim.info.detail
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


# --- a measured GPU profile replayed --------------------------------------------------------------

H100_NAME = "h100-birefnet-swinl-fp16-1024"


@pytest.fixture(scope="module")
def h100() -> ProfiledDevice:
    path = resolve_profile_path(H100_NAME)
    return ProfiledDevice(load_profile(path), path, capacity_bytes=None)


def test_a_profile_replays_its_batch_time_overlap_curve_and_memory(h100: ProfiledDevice) -> None:
    sim = SimBackend(device=h100)
    assert sim.input_size == 1024  # the CPU stages normalise to the profiled resolution
    assert sim.info.detail.startswith("simulated from a profile measured on NVIDIA H100 80GB HBM3")
    assert "not this project's measurement" in sim.info.detail
    alone_s = batch_service_s(h100.profile, 1)
    started = time.perf_counter()
    sim.infer(one_image(sim))
    assert time.perf_counter() - started >= alone_s * 0.95
    durations = overlapping(sim, 2)
    # the measured curve: two overlapping calls each take 2 / speedup(2) = 1.14x as long alone,
    # where ideal processor sharing would say 2x
    assert min(durations) >= alone_s * overlap_slowdown(h100.profile, 2) * 0.95
    assert max(durations) < alone_s * 2 * 0.95
    assert sim.peak_memory_bytes() == memory_in_flight_bytes(h100.profile, [1, 1])


def test_a_profile_runs_out_of_memory_at_its_bound_or_the_one_given(h100: ProfiledDevice) -> None:
    assert not h100.out_of_memory([64]) and h100.out_of_memory([72])  # beyond 85.5 GB: extrapolated
    capped = ProfiledDevice(h100.profile, h100.source, capacity_bytes=4 * 10**9)
    assert "memory bound 4 GB (--sim-memory-gb)" in capped.describe()
    sim = SimBackend(device=capped)
    sim.infer(one_image(sim, images=2))  # 2.95 GB
    with pytest.raises(GpuOutOfMemory, match="ran out of memory"):
        sim.infer(one_image(sim, images=4))  # 5.40 GB
    with pytest.raises(ValueError, match="holds no image of the profile"):
        ProfiledDevice(h100.profile, h100.source, capacity_bytes=10**9)


def gpu_spans_ms(rows: list[dict]) -> list[float]:
    return [(row["t_gpu_end"] - row["t_gpu_start"]) * 1000 for row in rows]


def assert_replays(spans_ms: list[float], measured_ms: float) -> None:
    """The simulated GPU never finishes early, and a busy host only adds to a call (a late wake-up):
    the fastest of several calls is the replay's own time."""
    assert measured_ms * 0.99 <= min(spans_ms) <= measured_ms * 1.05, (measured_ms, spans_ms)


def test_a_server_replays_the_profile_single_stream_and_per_batch_within_5_percent(
    server_factory: StartServer,
) -> None:
    profile = load_profile(resolve_profile_path(H100_NAME))
    measured_ms = {point.batch_size: point.service_ms for point in profile.batch}
    single = server_factory("fastapi", "--model", "sim", "--sim-profile", H100_NAME)
    line = single.health["startup_line"]
    assert "simulated from a profile measured on NVIDIA H100 80GB HBM3" in line and "elsewhere" in line
    assert "simulated from a profile" in single.health["model"]["detail"]
    for i in range(10):  # one client, back to back
        assert fastapi_http.segment(single.url, PHOTO, **{"X-Request-ID": f"s{i}"}).status_code == 200
    assert_replays(gpu_spans_ms(server_state.ledger(single.url)["requests"]), measured_ms[1])

    batched = server_factory(
        "fastapi", "--model", "sim", "--sim-profile", H100_NAME, "--batch", "8", "--batch-wait-ms", "1500"
    )
    for size in (4, 8) * 3:
        burst([lambda: fastapi_http.segment(batched.url, PHOTO).status_code] * size)
    batches = server_state.by_batch(server_state.wait_idle(batched.url)["requests"])
    for size in (4, 8):
        spans = gpu_spans_ms([mates[0] for mates in batches.values() if len(mates) == size])
        assert len(spans) == 3, (size, spans)
        assert_replays(spans, measured_ms[size])
