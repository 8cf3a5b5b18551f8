"""What the gradio server keeps between calls stays bounded: Gradio's sessions
(``--state-sessions``), its queue's per-call leftovers and unclaimed results
(``servers/gradio_queue.py``), and the project's own arrival stamps."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from servers.core.imaging import sample_png
from servers.gradio_queue import SWEEP_EVERY_S
from tests.helpers import gradio_http, server_state
from tests.helpers.common import StartServer

B64 = base64.b64encode(sample_png(64)).decode()
CALLS = 100


def held_after_a_sweep(base: str) -> dict[str, int]:
    """The sweep runs after a request, at most every SWEEP_EVERY_S: wait, then trigger it."""
    time.sleep(SWEEP_EVERY_S + 0.1)
    httpx.get(f"{base}/healthz")
    return server_state.ledger(base)["held"]


@pytest.mark.parametrize(("sessions", "bounded"), [("8", True), ("10000", False)], ids=["bounded", "stock"])
def test_sessions_and_queue_leftovers_stay_bounded(
    server_factory: StartServer, sessions: str, bounded: bool
) -> None:
    server = server_factory("gradio", "--model", "sim", "--sim-ms", "0", "--state-sessions", sessions)
    with ThreadPoolExecutor(4) as pool:
        events = list(
            pool.map(lambda _: gradio_http.call(server.url, "segment_b64", B64).event, range(CALLS))
        )
    assert events == ["complete"] * CALLS
    held = held_after_a_sweep(server.url)
    # each /call opens a session that keeps its input and output until the capacity evicts it
    assert held["state_sessions"] == 8 if bounded else held["state_sessions"] >= CALLS
    assert held["queue_sessions"] == 0 and held["message_sessions"] == 0, held
    assert held["arrival_stamps"] == 0


def test_results_nobody_collects_are_dropped_after_the_retention(server_factory: StartServer) -> None:
    server = server_factory("gradio", "--model", "sim", "--sim-ms", "0", "--keep-files-s", "3")
    for _ in range(5):  # called, never collected
        httpx.post(f"{server.url}/gradio_api/call/segment_b64", json={"data": [B64]}).raise_for_status()
    server_state.wait_idle(server.url)
    assert held_after_a_sweep(server.url)["message_sessions"] == 5  # inside the retention: kept
    time.sleep(3.0)
    held = held_after_a_sweep(server.url)
    assert (held["queue_sessions"], held["message_sessions"]) == (0, 0), held
    assert gradio_http.call(server.url, "segment_b64", B64).event == "complete"
