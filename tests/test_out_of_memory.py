"""GPU out of memory (``GpuOutOfMemory``) on real servers, made reachable on the CPU by the sim
backend's capacity: a 503 (an SSE error on Gradio) with a message, the server still serving,
nothing held. The naive server reaches the cliff under a burst; the locked ones do not."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers import gradio_http, server_state
from tests.helpers.common import PHOTO, StartServer

BURST = 16
MEMORY = ("--sim-memory-gb", "2")  # weights + 5 images


def burst_outcomes(kind: str, base: str, count: int = BURST) -> list[tuple[int | str, str]]:
    """(status or SSE event, message) of ``count`` requests released together."""
    barrier = threading.Barrier(count)
    b64 = base64.b64encode(PHOTO).decode()

    def one(_: int) -> tuple[int | str, str]:
        barrier.wait()
        if kind == "gradio":
            result = gradio_http.call(base, "segment_b64", b64)
            return result.event, str(result.data)
        response = httpx.post(f"{base}/segment", content=PHOTO, timeout=120)
        return response.status_code, response.text if response.status_code != 200 else ""

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.parametrize(
    ("kind", "flags", "cliff"),
    [
        ("fastapi-naive", (), True),
        ("fastapi", ("--concurrency", "1"), False),
        ("gradio", ("--concurrency", "1"), False),
        ("gradio", ("--concurrency", "8"), True),
    ],
    ids=["fastapi-naive", "fastapi-locked", "gradio-locked", "gradio-concurrency-8"],
)
def test_out_of_memory_is_a_503_and_the_server_survives(
    server_factory: StartServer, kind: str, flags: tuple[str, ...], cliff: bool
) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", "300", *MEMORY, *flags)
    assert "2 GB memory (5 images)" in server.health["startup_line"]
    outcomes = burst_outcomes(kind, server.url)
    failed = [outcome for outcome in outcomes if outcome[0] not in (200, "complete")]
    if cliff:
        assert failed and len(failed) < BURST, outcomes
        assert all(status in (503, "error") and "ran out of memory" in text for status, text in failed)
    else:
        assert not failed, failed
    state = server_state.wait_idle(server.url)
    rows = state["requests"]
    assert sorted(row["status"] for row in rows) == sorted(
        503 if status in (503, "error") else 200 for status, _ in outcomes
    )
    assert {row["stage"] for row in rows if row["status"] == 503} <= {"gpu"}
    assert state["peak_gpu_bytes"] <= 2e9
    # still serving, and the memory was given back: a burst of as many as fit all succeed
    assert all(status in (200, "complete") for status, _ in burst_outcomes(kind, server.url, 5))
