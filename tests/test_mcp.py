"""The MCP tool on both servers, through the ``mcp`` SDK's own client (Streamable HTTP + ClientSession)."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from mcp.types import TextContent
from PIL import Image

from loadtests.clients import make_client
from loadtests.clients.mcp_protocol import image_data
from loadtests.serverproc import ServerProcess
from loadtests.session import PlainSession
from tests.helpers import gradio_http
from tests.helpers.common import PHOTO, StartServer
from tests.helpers.mcp_sdk import MCP_PATHS, TOOL, call_tool, mcp_session_calls, tool_png
from tests.helpers.servers import sim_server

PHOTO_B64 = base64.b64encode(PHOTO).decode()


def rest_png(server: ServerProcess, data: bytes) -> bytes:
    if server.kind == "gradio":
        result = gradio_http.call(server.url, "segment_b64", base64.b64encode(data).decode())
        assert result.event == "complete", result.data
        assert isinstance(result.data, list)
        return base64.b64decode(result.data[0])
    response = httpx.post(
        f"{server.url}/segment", content=data, headers={"Content-Type": "image/jpeg"}, timeout=120
    )
    assert response.status_code == 200, response.text
    return response.content


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def ledger(server: ServerProcess) -> dict[str, Any]:
    return httpx.get(f"{server.url}/ledger", timeout=10).json()


@pytest.fixture(scope="module")
def sim_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    logs = tmp_path_factory.mktemp("mcp-logs")
    with sim_server("gradio", logs) as gradio, sim_server("fastapi", logs) as fastapi:
        yield {"gradio": gradio, "fastapi": fastapi}


@pytest.mark.parametrize("kind", ["gradio", "fastapi"])
def test_tool_is_listed_and_answers_the_rest_endpoints_image(sim_servers: dict, kind: str) -> None:
    server = sim_servers[kind]
    request_id = f"mcp-{uuid.uuid4().hex}"
    tools, (result,) = mcp_session_calls(server, {"image": PHOTO_B64}, request_id=request_id)
    (tool,) = [tool for tool in tools if tool.name == TOOL]
    assert tool.inputSchema["properties"]["image"]["type"] == "string"
    assert tool.inputSchema["required"] == ["image"]
    assert "background" in (tool.description or "")
    png = tool_png(result)
    rest = rest_png(server, PHOTO)
    assert Image.open(io.BytesIO(png)).size == Image.open(io.BytesIO(PHOTO)).size
    if kind == "fastapi":
        assert png == rest
    else:  # Gradio re-encodes the result file with PIL's default PNG level (see the level-6 test)
        assert np.array_equal(pixels(png), pixels(rest))
    # the caller's X-Request-ID names the ledger row, on gradio through its loopback call too
    (row,) = [row for row in ledger(server)["requests"] if row["request_id"] == request_id]
    assert row["endpoint"] == f"mcp:{TOOL}"
    assert row["status"] == 200
    assert row["t_recv"] <= row["t_admit"] <= row["t_gpu_start"] < row["t_gpu_end"] <= row["t_send"]


@pytest.mark.parametrize("kind", ["gradio", "fastapi"])
def test_bad_input_is_a_tool_error_and_the_server_keeps_serving(sim_servers: dict, kind: str) -> None:
    server = sim_servers[kind]
    httpx.post(f"{server.url}/ledger/reset", timeout=10)
    bad_base64, not_an_image, good = mcp_session_calls(
        server,
        {"image": "this is not base64!"},
        {"image": base64.b64encode(b"hello, not an image").decode()},
        {"image": "data:image/jpeg;base64," + PHOTO_B64},
    )[1]
    for result, message in ((bad_base64, "not valid base64"), (not_an_image, "not an image PIL can read")):
        assert result.isError
        (text,) = [item.text for item in result.content if isinstance(item, TextContent)]
        assert message in text
    assert tool_png(good).startswith(b"\x89PNG")
    state = ledger(server)
    assert [(row["endpoint"], row["status"]) for row in state["requests"]] == [
        (f"mcp:{TOOL}", 400),
        (f"mcp:{TOOL}", 415),
        (f"mcp:{TOOL}", 200),
    ]
    assert (state["in_flight"], state["in_gpu"], state["queued"]) == (0, 0, 0)


def test_gradio_tool_bytes_equal_rest_at_pillows_default_png_level(server_factory: StartServer) -> None:
    """Gradio's MCP layer reopens the result file and saves it with PIL's defaults (zlib level 6):
    at --png-level 6 the bytes are the REST endpoints' own, on both servers."""
    servers = [
        server_factory(kind, "--model", "sim", "--sim-ms", "5", "--png-level", "6") for kind in MCP_PATHS
    ]
    rest = rest_png(servers[1], PHOTO)
    for server in servers:
        assert tool_png(call_tool(server, {"image": PHOTO_B64})) == rest, server.kind
        assert rest_png(server, PHOTO) == rest, server.kind


def test_fastapi_tool_waits_behind_the_same_semaphore_and_queue_bound(server_factory: StartServer) -> None:
    server = server_factory("fastapi", "--model", "sim", "--sim-ms", "1000", "--max-queue", "1")

    def rest(_: int) -> int:
        return httpx.post(
            f"{server.url}/segment", content=PHOTO, headers={"Content-Type": "image/jpeg"}, timeout=60
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        rest_calls = [pool.submit(rest, i) for i in range(2)]
        tool_calls = [pool.submit(call_tool, server, {"image": PHOTO_B64}) for _ in range(2)]
        statuses = [call.result() for call in rest_calls]
        results = [call.result() for call in tool_calls]
    rows = ledger(server)["requests"]
    # one slot and one waiter: of four simultaneous requests, REST and MCP alike, two are refused,
    # before any work and so without a ledger row (as Gradio's full queue)
    assert statuses.count(503) + sum(result.isError for result in results) == 2
    assert [row["status"] for row in rows] == [200, 200], rows
    assert max(row["gpu_depth"] for row in rows) == 1
    for result in results:
        if result.isError:
            assert "server busy" in result.content[0].text
    assert (ledger(server)["in_flight"], ledger(server)["queued"]) == (0, 0)


@pytest.mark.parametrize("kind", ["fastapi", "gradio"])
def test_tool_calls_are_batched_as_rest_calls_are(server_factory: StartServer, kind: str) -> None:
    """FastAPI: tool calls join the same batcher as /segment; gradio: the tool's own function is
    batched (Gradio batches calls of one function), behind the one concurrency slot."""
    wait = ("--batch-wait-ms", "1500") if kind == "fastapi" else ()
    server = server_factory(kind, "--model", "sim", "--sim-ms", "1000", "--batch", "4", *wait)
    with ThreadPoolExecutor(4) as pool:
        rest_calls = [pool.submit(rest_png, server, PHOTO)]  # gradio: it holds the slot meanwhile
        time.sleep(0.1)
        tool_calls = [pool.submit(call_tool, server, {"image": PHOTO_B64}) for _ in range(3)]
        expected = pixels(rest_calls[0].result())
        assert all(np.array_equal(pixels(tool_png(call.result())), expected) for call in tool_calls)
    rows = ledger(server)["requests"]
    assert (ledger(server)["in_flight"], ledger(server)["queued"]) == (0, 0)
    tool_batches = {row["batch_id"] for row in rows if row["endpoint"] == "mcp:remove_background"}
    mates = [row for row in rows if row["batch_id"] in tool_batches]
    assert max(Counter(row["batch_id"] for row in mates).values()) >= 2, rows
    if kind == "fastapi":
        assert {row["endpoint"] for row in mates} == {"mcp:remove_background", "/segment"}


def test_no_mcp_serves_no_tool(server_factory: StartServer) -> None:
    for kind in ("gradio", "fastapi"):
        server = server_factory(kind, "--model", "sim", "--no-mcp")
        response = httpx.post(
            server.url + MCP_PATHS[kind],
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
            timeout=10,
        )
        assert response.status_code in (404, 405), (kind, response.status_code)
        assert "MCP off" in server.health["startup_line"]


@pytest.mark.slow
def test_u2netp_tool_answers_the_rest_endpoints_image(server_factory: StartServer) -> None:
    for kind in ("gradio", "fastapi"):
        server = server_factory(kind, "--model", "u2netp", "--torch-threads", "1")
        png = tool_png(call_tool(server, {"image": PHOTO_B64}))
        rest = rest_png(server, PHOTO)
        assert np.array_equal(pixels(png), pixels(rest)), kind
        if kind == "fastapi":
            assert png == rest


@pytest.mark.parametrize("kind", ["gradio", "fastapi"])
def test_load_generators_client_receives_the_sdk_clients_image(sim_servers: dict, kind: str) -> None:
    """The load generator speaks Streamable HTTP itself (no SDK inside Locust's gevent users):
    the image it gets for the photo is, byte for byte, the one the SDK's own client gets."""
    server = sim_servers[kind]
    client = make_client("mcp", PHOTO)
    session = PlainSession(server.url)
    client.prepare(session, time.time() + 30)
    assert client.preparation["endpoint"] == MCP_PATHS[kind]
    request_id = f"load-{uuid.uuid4().hex}"
    ours = base64.b64decode(image_data(client.call_tool(session, request_id, time.time() + 30)))
    assert ours == tool_png(call_tool(server, {"image": PHOTO_B64}))
    (row,) = [row for row in ledger(server)["requests"] if row["request_id"] == request_id]
    assert (row["endpoint"], row["status"]) == (f"mcp:{TOOL}", 200)
