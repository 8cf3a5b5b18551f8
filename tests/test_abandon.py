"""Abandoned requests (``servers/abandon.py``, ``servers/gradio_queue.py``): a client that leaves
costs no GPU time once the server can tell, is recorded as 499 with the stage it reached, and
holds no slot afterwards."""

from __future__ import annotations

import base64
import itertools
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from servers.core.imaging import sample_png
from tests.helpers import faults, gradio_http, server_state
from tests.helpers.common import PHOTO, StartServer

SMALL = sample_png(64)
LEAVERS = 20

# (kind, flags): every guarded kind; the naive one admits everyone at once, so there is no wait to leave
GUARDED = [
    ("fastapi", ("--lock-scope", "gpu")),
    ("fastapi", ("--lock-scope", "request")),
    ("gradio", ()),
]
GUARDED_IDS = ["fastapi-gpu-lock", "fastapi-request-lock", "gradio"]


def fresh_call(kind: str, base: str, image: bytes) -> None:
    if kind == "gradio":
        result = gradio_http.call(base, "segment_b64", base64.b64encode(image).decode())
        assert result.event == "complete", result.data
    else:
        httpx.post(f"{base}/segment", content=image, timeout=60).raise_for_status()


@pytest.mark.parametrize(("kind", "flags"), GUARDED, ids=GUARDED_IDS)
def test_clients_that_leave_cost_no_gpu_time(
    server_factory: StartServer, kind: str, flags: tuple[str, ...]
) -> None:
    # the setup: one 200 ms GPU slot, 20 clients leave 50 ms after sending
    server = server_factory(kind, "--model", "sim", "--sim-ms", "200", "--concurrency", "1", *flags)
    with ThreadPoolExecutor(LEAVERS) as pool:
        list(pool.map(lambda i: faults.leave(kind, server.url, PHOTO, f"gone-{i}", 0.05), range(LEAVERS)))
    started = time.perf_counter()
    fresh_call(kind, server.url, PHOTO)
    fresh_s = time.perf_counter() - started
    state = server_state.wait_idle(server.url)
    rows = [row for row in state["requests"] if row["request_id"].startswith("gone-")]
    assert len(rows) == LEAVERS and {row["status"] for row in rows} == {499}, Counter(
        row["status"] for row in rows
    )
    ran = [row for row in rows if row["t_gpu_start"] is not None]
    # only what was already on the GPU (or dispatched just before its client left) ran;
    # had all 20 run, the fresh request would have waited 4 s behind them
    assert len(ran) <= 3 and fresh_s < 2.5, (len(ran), fresh_s)
    assert {row["stage"] for row in rows if row["t_gpu_start"] is None} <= {"queued", "pre"}
    assert state["held"]["arrival_stamps"] == 0


@pytest.mark.parametrize(
    ("kind", "flags"),
    [
        GUARDED[0],
        GUARDED[1],
        pytest.param(*GUARDED[2], marks=pytest.mark.slow),
    ],
    ids=GUARDED_IDS,
)
def test_a_thousand_abandoned_requests_leave_no_slot_held(
    server_factory: StartServer, kind: str, flags: tuple[str, ...]
) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", "20", "--concurrency", "2", *flags)
    count = 1000
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda i: faults.leave(kind, server.url, SMALL, f"gone-{i}", 0.03), range(count)))
    state = server_state.wait_idle(server.url)
    statuses = Counter(row["status"] for row in state["requests"])
    assert sum(statuses.values()) == count and set(statuses) <= {200, 499}, statuses
    assert statuses[499] > count // 2, statuses
    # both slots are free: two requests released together are on the GPU together
    httpx.post(f"{server.url}/ledger/reset")
    barrier_calls = [lambda: fresh_call(kind, server.url, SMALL) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda call: call(), barrier_calls))
    rows = server_state.wait_idle(server.url)["requests"]
    assert [row["status"] for row in rows] == [200, 200]
    spans = sorted((row["t_gpu_start"], row["t_gpu_end"]) for row in rows)
    overlapped = any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    assert (
        overlapped
        or max(row["gpu_depth"] for row in rows) == 2
        or all(row["t_admit"] - row["t_recv"] < 0.5 for row in rows)
    )
    assert server_state.ledger(server.url)["held"]["arrival_stamps"] == 0
