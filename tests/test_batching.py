"""Dynamic batching (``--batch``) on real servers: how batches form (size and wait bounds, read from
the ledger), every request answered once with its own answer, a request that fails alone failing
alone, abandonment and out-of-memory inside a batch, and byte identity with unbatched output."""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter

import httpx
import pytest

from servers.core.backends.sim import SimBackend
from servers.core.segmenter import Segmenter
from tests.helpers import fastapi_http, faults, gradio_http, server_state
from tests.helpers.common import PHOTO, StartServer, burst
from tests.helpers.servers import small_jpeg

# (kind, flags): where the batch is formed, and what it holds under the lock
BATCHED = [
    ("fastapi", ("--lock-scope", "gpu")),  # prepared images; decode and encode outside the lock
    ("fastapi", ("--lock-scope", "request")),  # whole requests: decode, GPU, encode under the lock
    ("gradio", ()),  # Gradio's queue: the batched function does it all
]
BATCHED_IDS = ["fastapi-gpu-lock", "fastapi-request-lock", "gradio"]
BAD = b"not an image"
# a blocker's GPU call: a burst sent 0.1 s after it must arrive while it runs, and starting the
# burst's clients takes 0.2-0.35 s on this shared 2-core box
BLOCK_MS = "1000"


def segment(kind: str, base: str, data: bytes, request_id: str) -> tuple[int | str, bytes | str]:
    """(200, PNG) or (status, message); gradio's errors as ("error", message)."""
    if kind == "gradio":
        payload = base64.b64encode(data).decode() if data != BAD else "not base64!"
        result = gradio_http.call(base, "segment_b64", payload, request_id)
        if result.event == "complete":
            assert isinstance(result.data, list)
            return 200, base64.b64decode(result.data[0])
        return result.event, str(result.data)
    response = fastapi_http.segment(base, data, **{"X-Request-ID": request_id})
    return response.status_code, response.content if response.status_code == 200 else response.text


def expected_png(data: bytes) -> bytes:
    """What the sim backend's pipeline returns for ``data``, in-process (the servers' default sim)."""
    return Segmenter(SimBackend(0)).segment(data)


def blocked_burst(kind: str, base: str, images: list[bytes]) -> list[tuple[int | str, bytes | str]]:
    """One request that occupies the GPU (``BLOCK_MS``), then ``images`` sent while it runs (so they
    wait in line together); returns the outcomes of ``images``, in order."""
    blocker = threading.Thread(target=segment, args=(kind, base, PHOTO, "blocker"))
    blocker.start()
    time.sleep(0.1)
    outcomes = burst(
        [lambda i=i, data=data: segment(kind, base, data, f"r{i}") for i, data in enumerate(images)]
    )
    blocker.join()
    return outcomes


def assert_batches_are_consistent(rows: list[dict], size: int) -> dict[int, list[dict]]:
    """Batch-mates share one GPU interval and say how many they are; one GPU call at a time."""
    batches = server_state.by_batch(rows)
    for mates in batches.values():
        assert {(row["t_gpu_start"], row["t_gpu_end"], row["batch_size"]) for row in mates} == {
            (mates[0]["t_gpu_start"], mates[0]["t_gpu_end"], len(mates))
        }
        assert 1 <= len(mates) <= size
        assert {row["gpu_depth"] for row in mates} == {1}  # --concurrency 1: calls, not rows, counted
    return batches


def assert_idle_and_clean(base: str) -> dict:
    state = server_state.wait_idle(base)
    assert state["held"]["arrival_stamps"] == 0
    return state


@pytest.mark.parametrize(("kind", "flags"), BATCHED, ids=BATCHED_IDS)
def test_every_request_gets_its_own_answer_once_in_batches_up_to_the_size(
    server_factory: StartServer, kind: str, flags: tuple[str, ...]
) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", BLOCK_MS, "--batch", "4", *flags)
    images = [small_jpeg(40 + i) for i in range(13)]  # distinct sizes: distinct answers
    outcomes = blocked_burst(kind, server.url, images)
    assert outcomes == [(200, expected_png(image)) for image in images]
    rows = [row for row in assert_idle_and_clean(server.url)["requests"] if row["request_id"] != "blocker"]
    assert sorted(row["request_id"] for row in rows) == sorted(f"r{i}" for i in range(13))
    assert {row["status"] for row in rows} == {200}
    batches = assert_batches_are_consistent(rows, size=4)
    # the thirteen waited while the blocker ran: the line was longer than a batch
    assert max(len(mates) for mates in batches.values()) == 4, Counter(len(m) for m in batches.values())


def test_fastapi_waits_at_most_the_batch_wait_for_company(server_factory: StartServer) -> None:
    wait_s = 0.4
    server = server_factory(
        "fastapi", "--model", "sim", "--sim-ms", "20", "--batch", "8", "--batch-wait-ms", str(wait_s * 1000)
    )
    assert "batch up to 8, wait <= 400 ms" in server.health["startup_line"]
    assert segment("fastapi", server.url, PHOTO, "alone")[0] == 200
    second = threading.Timer(0.15, segment, args=("fastapi", server.url, PHOTO, "second"))
    second.start()
    assert segment("fastapi", server.url, PHOTO, "first")[0] == 200
    second.join()
    rows = {row["request_id"]: row for row in assert_idle_and_clean(server.url)["requests"]}

    def in_line_s(row: dict) -> float:  # from the end of its decode to its batch's admission
        return row["t_admit"] - row["t_recv"] - row["pre_s"]

    # alone: it waited the whole bound for company, then ran at once
    alone = rows["alone"]
    assert alone["batch_size"] == 1
    assert wait_s * 0.95 <= in_line_s(alone) < wait_s + 1.0
    assert alone["t_gpu_start"] - alone["t_admit"] < 0.5
    # a second request 150 ms later joined the first one's batch, which left by the bound
    assert rows["first"]["batch_id"] == rows["second"]["batch_id"] and rows["first"]["batch_size"] == 2
    assert wait_s * 0.95 <= in_line_s(rows["first"]) < wait_s + 1.0
    assert in_line_s(rows["second"]) < in_line_s(rows["first"])


def test_gradio_batches_what_already_waits_without_waiting_for_more(server_factory: StartServer) -> None:
    server = server_factory("gradio", "--model", "sim", "--sim-ms", "300", "--batch", "4")
    # both endpoints at once: Gradio batches calls of the same function only
    b64 = base64.b64encode(PHOTO).decode()
    calls = [
        (lambda: gradio_http.segment_file(server.url, PHOTO))
        if i % 2
        else (lambda: base64.b64decode(gradio_http.call(server.url, "segment_b64", b64).data[0]))
        for i in range(10)
    ]
    assert set(burst(calls)) == {expected_png(PHOTO)}
    rows = assert_idle_and_clean(server.url)["requests"]
    batches = assert_batches_are_consistent(rows, size=4)
    assert all(len({row["endpoint"] for row in mates}) == 1 for mates in batches.values())
    assert max(len(mates) for mates in batches.values()) > 1
    # a call that finds the GPU free runs alone at once: no waiting for company
    httpx.post(f"{server.url}/ledger/reset")
    assert segment("gradio", server.url, PHOTO, "alone")[0] == 200
    (alone,) = server_state.ledger(server.url)["requests"]
    assert alone["batch_size"] == 1 and alone["t_gpu_start"] - alone["t_recv"] < 0.3


@pytest.mark.parametrize(("kind", "flags"), BATCHED, ids=BATCHED_IDS)
def test_bad_input_in_a_batch_fails_only_its_own_request(
    server_factory: StartServer, kind: str, flags: tuple[str, ...]
) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", BLOCK_MS, "--batch", "4", *flags)
    images = [small_jpeg(48), BAD, small_jpeg(56), BAD]
    outcomes = blocked_burst(kind, server.url, images)
    assert [outcomes[0], outcomes[2]] == [(200, expected_png(images[0])), (200, expected_png(images[2]))]
    for status, message in (outcomes[1], outcomes[3]):
        assert status in (400, 415, "error") and ("base64" in str(message) or "not an image" in str(message))
    rows = {row["request_id"]: row for row in assert_idle_and_clean(server.url)["requests"]}
    good, bad = [rows["r0"], rows["r2"]], [rows["r1"], rows["r3"]]
    assert {row["status"] for row in bad} <= {400, 415} and {row["stage"] for row in bad} == {"pre"}
    assert all(row["batch_id"] is None for row in bad)
    # the good ones shared one GPU call; the call held only them
    assert good[0]["batch_id"] == good[1]["batch_id"] and good[0]["batch_size"] == 2
    if kind == "gradio" or "request" in flags:
        # the bad ones were decoded inside that same batch (admitted with it), and failed alone
        assert {row["t_admit"] for row in good + bad} == {good[0]["t_admit"]}
    assert segment(kind, server.url, PHOTO, "after")[0] == 200


@pytest.mark.parametrize(("kind", "flags"), BATCHED, ids=BATCHED_IDS)
def test_a_client_that_leaves_while_in_line_is_dropped_from_its_batch(
    server_factory: StartServer, kind: str, flags: tuple[str, ...]
) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", BLOCK_MS, "--batch", "4", *flags)
    blocker = threading.Thread(target=segment, args=(kind, server.url, PHOTO, "blocker"))
    blocker.start()
    time.sleep(0.1)
    stayers = threading.Thread(
        target=burst, args=([lambda i=i: segment(kind, server.url, PHOTO, f"stay-{i}") for i in range(2)],)
    )
    stayers.start()
    burst([lambda i=i: faults.leave(kind, server.url, PHOTO, f"gone-{i}", 0.15) for i in range(2)])
    stayers.join()
    blocker.join()
    rows = {row["request_id"]: row for row in assert_idle_and_clean(server.url)["requests"]}
    gone = [rows["gone-0"], rows["gone-1"]]
    assert {row["status"] for row in gone} == {499} and {row["t_gpu_start"] for row in gone} == {None}
    assert {row["stage"] for row in gone} == {"queued"}
    stay = [rows["stay-0"], rows["stay-1"]]
    assert {row["status"] for row in stay} == {200}
    assert stay[0]["batch_id"] == stay[1]["batch_id"] and stay[0]["batch_size"] == 2


@pytest.mark.parametrize("kind", ["fastapi", "gradio"])
def test_a_batch_out_of_memory_fails_its_requests_with_503_and_the_server_serves_on(
    server_factory: StartServer, kind: str
) -> None:
    # 2 GB hold the weights and 5 images: a batch of 8 does not fit, a batch of 1 does
    server = server_factory(
        kind, "--model", "sim", "--sim-ms", BLOCK_MS, "--sim-memory-gb", "2", "--batch", "8"
    )
    outcomes = blocked_burst(kind, server.url, [PHOTO] * 8)
    assert {status for status, _ in outcomes} == {503 if kind == "fastapi" else "error"}
    assert all("ran out of memory" in str(message) for _, message in outcomes)
    rows = assert_idle_and_clean(server.url)["requests"]
    failed = [row for row in rows if row["request_id"] != "blocker"]
    assert {(row["status"], row["stage"], row["batch_size"]) for row in failed} == {(503, "gpu", 8)}
    assert segment(kind, server.url, PHOTO, "after")[0] == 200


@pytest.mark.parametrize("model", ["sim", pytest.param("u2netp", marks=pytest.mark.slow)])
def test_batched_output_is_byte_identical_to_unbatched(server_factory: StartServer, model: str) -> None:
    threads = ("--torch-threads", "1") if model != "sim" else ()
    reference = server_factory("fastapi", "--model", model, *threads)
    expected = segment("fastapi", reference.url, PHOTO, "reference")
    assert expected[0] == 200
    for kind in ("fastapi", "gradio"):
        server = server_factory(kind, "--model", model, *threads, "--batch", "4")
        calls = [
            lambda i=i, kind=kind, base=server.url: segment(kind, base, PHOTO, f"r{i}") for i in range(6)
        ]
        outcomes = burst(calls)
        assert outcomes == [expected] * 6, kind
        batches = server_state.by_batch(server_state.wait_idle(server.url)["requests"])
        assert max(len(mates) for mates in batches.values()) > 1, kind  # some did share a GPU call
