"""Refusals at the edge (``servers/limits.py``), on both servers: bodies over the limit in every
framing (413 while they arrive, memory held to about the limit), and a full queue (503 before
the body is read or decoded)."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers import faults, gradio_http, server_state
from tests.helpers.common import PHOTO, StartServer

MAX_MB = "1"  # raw limit 1.06 MB, base64-in-JSON limit 1.4 MB
# (path, content type) pairs that must refuse a chunked body over the limit
CHUNKED_ROUTES = {
    "fastapi": [
        ("/segment", "image/png"),
        ("/segment", "multipart/form-data"),
        ("/segment_b64", "application/json"),
    ],
    "gradio": [
        ("/gradio_api/call/segment_b64", "application/json"),
        ("/gradio_api/queue/join", "application/json"),
        ("/gradio_api/upload", "multipart/form-data"),
    ],
}


def ok_call(kind: str, base: str) -> None:
    if kind == "gradio":
        assert gradio_http.segment_file(base, PHOTO).startswith(b"\x89PNG")
    else:
        httpx.post(f"{base}/segment", content=PHOTO, timeout=60).raise_for_status()


@pytest.mark.parametrize("kind", ["fastapi", "gradio"])
def test_bodies_over_the_limit_are_refused_in_every_framing(server_factory: StartServer, kind: str) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", "5", "--max-mb", MAX_MB)
    pid = server.health["pid"]
    for path, content_type in CHUNKED_ROUTES[kind]:
        answer = faults.chunked_post(server.url, path, 5_000_000, content_type)
        assert answer.status == 413 and b"--max-mb" in answer.body, (path, content_type, answer)
    # a declared length over the limit is refused before a byte of the body is read
    declared = CHUNKED_ROUTES[kind][-1][0]
    refused = httpx.post(
        f"{server.url}{declared}", content=b"x" * 3_000_000, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 413 and "body is 3.0 MB" in refused.json()["detail"]
    assert refused.headers["x-request-id"]
    # one 100 MB chunked body: the server holds about the limit, never the body
    path, content_type = CHUNKED_ROUTES[kind][-1]
    growth = faults.peak_rss_growth(
        pid, lambda: faults.chunked_post(server.url, path, 100_000_000, "application/json")
    )
    assert growth < 30e6, f"peak RSS rose {growth / 1e6:.1f} MB for a refused body"
    ok_call(kind, server.url)
    state = server_state.wait_idle(server.url)
    assert state["held"]["arrival_stamps"] == 0


def wait_until_full(base: str) -> None:
    deadline = time.monotonic() + 30
    while server_state.ledger(base)["queued"] < 1:
        assert time.monotonic() < deadline, "the queue never filled"
        time.sleep(0.02)


@pytest.mark.parametrize("kind", ["fastapi", "gradio"])
def test_a_full_queue_refuses_before_reading_or_decoding(server_factory: StartServer, kind: str) -> None:
    server = server_factory(
        kind, "--model", "sim", "--sim-ms", "1500", "--concurrency", "1", "--max-queue", "1"
    )
    b64 = base64.b64encode(PHOTO).decode()
    if kind == "gradio":
        occupy = lambda: gradio_http.call(server.url, "segment_b64", b64).event  # noqa: E731
        path = "/gradio_api/call/segment_b64"
    else:
        occupy = lambda: httpx.post(f"{server.url}/segment", content=PHOTO, timeout=60).status_code  # noqa: E731
        path = "/segment_b64"
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(occupy)
        time.sleep(0.3)  # the first holds the slot
        waiting = pool.submit(occupy)
        wait_until_full(server.url)
        # garbage that any parser or decoder would reject with a 4xx: a 503 proves none ran
        refused = httpx.post(
            f"{server.url}{path}", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1", refused.text
        assert "retry later" in refused.json()["detail"] and refused.headers["x-request-id"]
        assert running.result() in (200, "complete") and waiting.result() in (200, "complete")
    state = server_state.wait_idle(server.url)
    assert state["held"]["arrival_stamps"] == 0
    ok_call(kind, server.url)
