"""The three server kinds as real processes: same bytes, protocols, locks, collisions, flags."""

from __future__ import annotations

import base64
import itertools
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from tests.helpers import fastapi_http, gradio_http, server_state
from tests.helpers.common import PHOTO, StartServer, burst

KINDS = ("gradio", "fastapi", "fastapi-naive")


def all_outputs(servers: dict, data: bytes) -> dict[str, bytes]:
    outputs: dict[str, bytes] = {}
    for kind, server in servers.items():
        if kind == "gradio":
            outputs["gradio segment (file)"] = gradio_http.segment_file(server.url, data)
            result = gradio_http.call(server.url, "segment_b64", base64.b64encode(data).decode())
            assert result.event == "complete", result.data
            outputs["gradio segment_b64"] = base64.b64decode(result.data[0])
        else:
            response = fastapi_http.segment(server.url, data)
            assert response.status_code == 200, response.text
            outputs[f"{kind} /segment"] = response.content
            multipart = httpx.post(f"{server.url}/segment", files={"image": ("p.jpg", data)}, timeout=120)
            outputs[f"{kind} /segment multipart"] = multipart.content
            b64 = httpx.post(
                f"{server.url}/segment_b64",
                json={"image": "data:image/jpeg;base64," + base64.b64encode(data).decode()},
                timeout=120,
            )
            outputs[f"{kind} /segment_b64"] = base64.b64decode(b64.json()["image"])
    return outputs


@pytest.mark.parametrize("model", ["sim", pytest.param("u2netp", marks=pytest.mark.slow)])
def test_every_server_returns_identical_bytes(server_factory: StartServer, model: str) -> None:
    threads = ("--torch-threads", "1") if model != "sim" else ()
    servers = {kind: server_factory(kind, "--model", model, *threads) for kind in KINDS}
    outputs = all_outputs(servers, PHOTO)
    reference = outputs["fastapi /segment"]
    assert reference.startswith(b"\x89PNG")
    assert {name: out == reference for name, out in outputs.items()} == dict.fromkeys(outputs, True)
    for server in servers.values():
        health = server.health
        assert health["model"]["backend"] == model
        assert health["model"]["weights"] == ("none" if model == "sim" else "real")


def test_in_process_pipeline_matches_the_servers(server_factory: StartServer) -> None:
    from servers.core.backends.sim import SimBackend
    from servers.core.segmenter import Segmenter

    expected = Segmenter(SimBackend(0)).segment(PHOTO)
    server = server_factory("fastapi", "--model", "sim", "--sim-ms", "0")
    assert fastapi_http.segment(server.url, PHOTO).content == expected


def test_gradio_client_contract(server_factory: StartServer, tmp_path: Path) -> None:
    server = server_factory("gradio", "--model", "sim", "--output", "mask")
    client = Client(server.url, verbose=False)
    encoded = client.predict(base64.b64encode(PHOTO).decode(), api_name="/segment_b64")
    photo_path = tmp_path / "photo.jpg"
    photo_path.write_bytes(PHOTO)
    result = client.predict(handle_file(str(photo_path)), api_name="/segment")
    result_path = result["path"] if isinstance(result, dict) else result
    assert Path(result_path).read_bytes() == base64.b64decode(encoded)


def test_gradio_names_result_files_itself(server_factory: StartServer, tmp_path: Path) -> None:
    server = server_factory("gradio", "--model", "sim", "--sim-ms", "0")
    path = gradio_http.upload(server.url, PHOTO)
    hostile = "../../../../" + str(tmp_path / "escaped").lstrip("/")
    result = gradio_http.call(
        server.url, "segment", {"path": path, "meta": {"_type": "gradio.FileData"}}, hostile
    )
    assert result.event == "complete", result.data
    assert "/outputs/" in result.data[0]["path"] and not (tmp_path / "escaped.png").exists()


@pytest.mark.parametrize(
    ("kind", "args", "expect_collisions"),
    [
        ("fastapi-naive", (), True),
        ("fastapi", ("--concurrency", "1"), False),
        ("fastapi", ("--concurrency", "1", "--lock-scope", "request"), False),
        ("gradio", ("--concurrency", "1"), False),
    ],
)
def test_gpu_collisions_only_without_a_lock(
    server_factory: StartServer, kind: str, args: tuple[str, ...], expect_collisions: bool
) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", "50", *args)
    httpx.post(f"{server.url}/ledger/reset")
    b64 = base64.b64encode(PHOTO).decode()
    if kind == "gradio":  # both endpoints mixed: one concurrency_id bounds them together
        calls = [
            (lambda: gradio_http.segment_file(server.url, PHOTO))
            if i % 2
            else (lambda: gradio_http.call(server.url, "segment_b64", b64).event)
            for i in range(8)
        ]
    else:
        calls = [lambda: fastapi_http.segment(server.url, PHOTO).status_code for _ in range(8)]
    burst(calls)
    rows = server_state.ledger(server.url)["requests"]
    assert len(rows) == 8 and all(row["status"] == 200 for row in rows)
    max_depth = max(row["gpu_depth"] for row in rows)
    assert (max_depth > 1) if expect_collisions else (max_depth == 1)
    if "request" in args or kind == "gradio":  # the whole request is serialised, not just the GPU
        spans = sorted((row["t_admit"], row["t_send"]) for row in rows)
        assert all(later[0] >= earlier[1] - 0.005 for earlier, later in itertools.pairwise(spans))


def test_fastapi_max_queue_answers_503_with_retry_after(server_factory: StartServer) -> None:
    server = server_factory("fastapi", "--model", "sim", "--sim-ms", "400", "--max-queue", "1")
    responses = burst([lambda: fastapi_http.segment(server.url, PHOTO) for _ in range(5)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 2 and 503 in statuses
    rejected = next(r for r in responses if r.status_code == 503)
    assert rejected.headers["retry-after"] == "1" and "retry" in rejected.json()["detail"]
    assert fastapi_http.segment(server.url, PHOTO).status_code == 200


def test_gradio_max_queue_answers_503(server_factory: StartServer) -> None:
    server = server_factory("gradio", "--model", "sim", "--sim-ms", "600", "--max-queue", "1")
    b64 = base64.b64encode(PHOTO).decode()
    statuses = burst(
        [
            lambda: httpx.post(f"{server.url}/gradio_api/call/segment_b64", json={"data": [b64]}).status_code
            for _ in range(6)
        ]
    )
    assert 503 in statuses and 200 in statuses
    # the accepted calls drain (nobody reads their results: Gradio runs them all the same)
    deadline = time.monotonic() + 60
    while (ledger := httpx.get(f"{server.url}/ledger").json())["queued"] or ledger["in_flight"]:
        assert time.monotonic() < deadline, ledger
        time.sleep(0.1)
    assert gradio_http.call(server.url, "segment_b64", b64).event == "complete"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gradio", "--lock-scope", "gpu"], "--lock-scope means nothing for gradio"),
        (["fastapi-naive", "--concurrency", "2"], "--concurrency means nothing for fastapi-naive"),
        (["fastapi", "--model", "sim", "--weights", "x"], "--weights means nothing for model sim"),
        (["fastapi", "--model", "u2netp", "--sim-ms", "5"], "--sim-ms means nothing for model u2netp"),
        (["fastapi", "--model", "sim", "--concurrency", "0"], "--concurrency must be >= 1"),
        (["fastapi", "--model", "sim", "--max-queue", "0"], "--max-queue must be >= 1"),
        (
            ["fastapi", "--model", "sim", "--torch-threads", "2"],
            "--torch-threads means nothing for model sim",
        ),
        (["gradio", "--model", "sim", "--device", "cpu"], "--device means nothing for model sim"),
        (
            ["fastapi", "--model", "sim", "--state-sessions", "8"],
            "--state-sessions means nothing for fastapi",
        ),
        (["fastapi-naive", "--keep-files-s", "5"], "--keep-files-s means nothing for fastapi-naive"),
        (["fastapi", "--max-temp-mb", "5"], "--max-temp-mb means nothing for fastapi"),
        (["gradio", "--model", "sim", "--state-sessions", "0"], "--state-sessions must be >= 1"),
        (["gradio", "--model", "sim", "--keep-files-s", "0"], "--keep-files-s must be > 0"),
        (
            ["fastapi", "--model", "u2netp", "--sim-memory-gb", "2"],
            "--sim-memory-gb means nothing for model u2netp",
        ),
        (["fastapi", "--model", "sim", "--sim-memory-gb", "0.5"], "--sim-memory-gb 0.5 holds no image"),
        (["fastapi-naive", "--model", "sim", "--batch", "4"], "--batch means nothing for fastapi-naive"),
        (["fastapi", "--model", "sim", "--batch", "0"], "--batch must be >= 1"),
        (
            ["fastapi", "--model", "sim", "--batch-wait-ms", "5"],
            "--batch-wait-ms means nothing without --batch > 1",
        ),
        (
            ["gradio", "--model", "sim", "--batch", "4", "--batch-wait-ms", "5"],
            "--batch-wait-ms means nothing for gradio",
        ),
        (
            ["fastapi", "--model", "sim", "--batch", "4", "--batch-wait-ms", "-1"],
            "--batch-wait-ms must be >= 0",
        ),
        (
            ["fastapi", "--model", "u2netp", "--sim-profile", "h100-birefnet-swinl-fp16-1024"],
            "--sim-profile means nothing for model u2netp",
        ),
        (
            ["fastapi", "--model", "sim", "--sim-profile", "h100-birefnet-swinl-fp16-1024", "--sim-ms", "5"],
            "--sim-ms means nothing with --sim-profile",
        ),
        (["fastapi", "--model", "sim", "--sim-profile", "no-such-gpu"], "no shipped profile of that name"),
    ],
)
def test_meaningless_flags_are_refused(argv: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "servers", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_gradio_cleans_its_temp_dir_when_stopped(tmp_path: Path) -> None:
    from loadtests.serverproc import start_server

    temp_root = tmp_path / "gradio-tmp"
    temp_root.mkdir()
    server = start_server(
        "gradio",
        ["--model", "sim", "--sim-ms", "0"],
        log_path=tmp_path / "g.log",
        env={"GRADIO_TEMP_DIR": str(temp_root)},
    )
    try:
        gradio_http.segment_file(server.url, PHOTO)
        assert any(temp_root.rglob("*.png"))  # the upload and the result live under it
    finally:
        server.stop()  # SIGTERM: the server must unwind and remove what it wrote
    assert list(temp_root.iterdir()) == []
