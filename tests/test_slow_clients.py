"""Slow clients (slow-loris): sockets trickling their headers or their body do not delay other
requests. Both servers run uvicorn with its defaults — one event loop, no thread per
connection, no header or body read timeout — so a slow socket costs a file descriptor and a
parser, never a worker; the bound tested is median latency within 3x + 250 ms of the
median without them (``scripts/bench_faults.py`` measures the ratio)."""

from __future__ import annotations

import base64
import statistics
import time

import httpx
import pytest

from tests.helpers import faults, gradio_http, server_state
from tests.helpers.common import PHOTO, StartServer

SLOW_SOCKETS = 32  # of each kind: trickled headers, trickled body
BODY_PATHS = {"fastapi": "/segment_b64", "gradio": "/gradio_api/call/segment_b64"}


def latencies(kind: str, base: str, count: int = 8) -> list[float]:
    b64 = base64.b64encode(PHOTO).decode()
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        if kind == "gradio":
            assert gradio_http.call(base, "segment_b64", b64).event == "complete"
        else:
            httpx.post(f"{base}/segment", content=PHOTO, timeout=60).raise_for_status()
        seconds.append(time.perf_counter() - started)
    return seconds


@pytest.mark.parametrize("kind", ["fastapi", "gradio"])
def test_slow_clients_do_not_delay_others(server_factory: StartServer, kind: str) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", "20")
    latencies(kind, server.url, 2)  # connection pools, first-call costs
    alone = statistics.median(latencies(kind, server.url))
    with (
        faults.slow_sockets(server.url, SLOW_SOCKETS, BODY_PATHS[kind], body=False),
        faults.slow_sockets(server.url, SLOW_SOCKETS, BODY_PATHS[kind], body=True),
    ):
        time.sleep(1.0)  # every slow socket has started trickling
        beside_slow = statistics.median(latencies(kind, server.url))
    assert beside_slow < 3 * alone + 0.25, (alone, beside_slow)
    state = server_state.wait_idle(server.url)
    assert state["held"]["arrival_stamps"] == 0
