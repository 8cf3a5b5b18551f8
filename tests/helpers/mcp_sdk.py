"""The ``mcp`` SDK's own client against a server's MCP tool (Streamable HTTP + ClientSession): what
the tests compare the servers' and the load generator's MCP paths with."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent

from loadtests.serverproc import ServerProcess

MCP_PATHS = {"gradio": "/gradio_api/mcp/", "fastapi": "/mcp", "fastapi-naive": "/mcp"}
TOOL = "remove_background"


def mcp_url(server: ServerProcess) -> str:
    return server.url + MCP_PATHS[server.kind]


def mcp_session_calls(server: ServerProcess, *calls: dict[str, Any], request_id: str | None = None) -> Any:
    """Open one session; list the tools, then make each call. ``request_id`` goes on every HTTP request."""

    async def run() -> tuple[list[Any], list[CallToolResult]]:
        headers = {"X-Request-ID": request_id} if request_id else {}
        async with (
            httpx.AsyncClient(headers=headers, timeout=120) as http,
            streamable_http_client(mcp_url(server), http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = (await session.list_tools()).tools
            results = [await session.call_tool(TOOL, arguments) for arguments in calls]
        return tools, results

    return anyio.run(run)


def call_tool(
    server: ServerProcess, arguments: dict[str, Any], request_id: str | None = None
) -> CallToolResult:
    return mcp_session_calls(server, arguments, request_id=request_id)[1][0]


def tool_png(result: CallToolResult) -> bytes:
    assert not result.isError, result.content
    images = [item for item in result.content if isinstance(item, ImageContent)]
    assert len(images) == 1, result.content
    assert images[0].mimeType == "image/png"
    return base64.b64decode(images[0].data)
