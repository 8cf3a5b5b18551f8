"""The load generator's MCP client against what the project's servers do not do: a stateful MCP
server (``Mcp-Session-Id`` on every request after ``initialize``) answering with SSE or with
plain JSON. The server is the ``mcp`` SDK's own FastMCP, run in its own process group."""

from __future__ import annotations

import io
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from loadtests.clients import make_client
from loadtests.serverproc import ServerProcess, free_port, launch
from loadtests.session import PlainSession
from tests.helpers.servers import small_jpeg

# A stateful SDK server whose tool answers the input image as PNG; /healthz for the readiness
# probe. Without the session id the SDK answers 400, so a call that succeeds carried it.
_SERVER = """
import base64, io, sys
import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.utilities.types import Image
from PIL import Image as PILImage
from starlette.responses import JSONResponse

port, answer = int(sys.argv[1]), sys.argv[2]
server = FastMCP("stateful", host="127.0.0.1", stateless_http=False, json_response=answer == "json")

@server.tool(name="remove_background")
def remove_background(image: str) -> Image:
    out = io.BytesIO()
    PILImage.open(io.BytesIO(base64.b64decode(image))).save(out, format="PNG")
    return Image(data=out.getvalue(), format="png")

@server.custom_route("/healthz", methods=["GET"])
async def healthz(request):
    return JSONResponse({"status": "ok"})

uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning")
"""


@pytest.fixture(params=["sse", "json"])
def stateful_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    server = launch(
        "stateful-mcp",
        [sys.executable, "-c", _SERVER, str(port), request.param],
        f"http://127.0.0.1:{port}",
        tmp_path / "server.log",
        dict(os.environ),
        ready_timeout_s=60,
    )
    try:
        yield server
    finally:
        server.stop()


def test_a_stateful_server_gets_its_session_id_on_every_call(stateful_server: ServerProcess) -> None:
    image = small_jpeg(48)
    client = make_client("mcp", image)
    session = PlainSession(stateful_server.url)
    client.prepare(session, time.time() + 30)
    assert client.preparation["stateful"] is True and client.preparation["endpoint"] == "/mcp"
    assert len(client.preparation["setup_s"]) == 10
    assert "Mcp-Session-Id" in client.session_headers
    results = [client.call(session, uuid.uuid4().hex, time.time() + 30) for _ in range(3)]
    assert all(result.ok for result in results), [result.error for result in results]
    png = io.BytesIO()
    Image.open(io.BytesIO(image)).save(png, format="PNG")
    assert {result.bytes for result in results} == {len(png.getvalue())}
    # a session the server does not know is refused: the id is what made the calls above work
    client.session_headers = {**client.session_headers, "Mcp-Session-Id": "not-a-session"}
    refused = client.call(session, uuid.uuid4().hex, time.time() + 30)
    assert not refused.ok and refused.error.startswith("http:") and refused.status in (400, 404)
