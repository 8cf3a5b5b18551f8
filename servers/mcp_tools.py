"""The one MCP tool contract both servers serve, and what it needs around it.

Tool ``remove_background``: argument ``image`` (base64, a ``data:`` URL prefix allowed) -> the
result PNG as MCP image content; bad input -> a tool error (``isError``) carrying the same
message the REST endpoints give. Gradio serves it from its own MCP server
(``launch(mcp_server=True)``, Streamable HTTP at ``/gradio_api/mcp/``) over an ``@app.api``
function tagged ``@app.mcp.tool()``; FastAPI serves it from the official ``mcp`` SDK's
server at ``/mcp``, calling the same admission (semaphore, lock scope, queue bound) as
``/segment``. Both are stateless Streamable HTTP, as Gradio's is.

Ledger rows of tool calls have endpoint ``mcp:remove_background`` and start (t_recv) when the
server has read the last body byte of the HTTP request carrying ``tools/call`` — stamped by
:class:`McpArrivals`, because Gradio runs the tool through a second, loopback HTTP request
whose own arrival is later.
"""

# no `from __future__ import annotations`: the SDK reads the tool's hints at registration, and
# string hints naming the locally imported SDK types could not be resolved
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servers.core import imaging
from servers.http_common import REQUEST_ID_HEADER, ArrivalStamps, stamp_at_last_byte

TOOL_NAME = "remove_background"
LEDGER_ENDPOINT = f"mcp:{TOOL_NAME}"
TOOL_DESCRIPTION = (
    "Remove the background of an image. Input: the image file (PNG, JPEG or WebP) base64-encoded, "
    "a data: URL prefix allowed. Output: a PNG at the input's size: the subject with a transparent "
    "background (RGBA cut-out), or the grey mask when the server runs with --output mask."
)
IMAGE_ARG_DESCRIPTION = "the image file base64-encoded (PNG, JPEG or WebP); a data: URL prefix is allowed"
FASTAPI_PATH = "/mcp"
GRADIO_PATH = "/gradio_api/mcp"
SERVER_NAME = "BiRefNet segmentation"

# (request id, t_recv or None, ledger endpoint, read the image bytes) -> PNG bytes
AdmittedSegment = Callable[[str, float | None, str, Callable[[], bytes]], Awaitable[bytes]]


class McpArrivals:
    """ASGI middleware: t_recv of POSTs to the MCP endpoint, keyed by request id.

    Must sit inside the request-id middleware (added before it), which guarantees the id. A stamp
    nobody claimed when the response ends (``initialize``, ``tools/list``...) is dropped.
    """

    def __init__(self, app: ASGIApp, stamps: ArrivalStamps, path: str) -> None:
        self.app = app
        self.stamps = stamps
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(self.path):
            await self.app(scope, receive, send)
            return
        header = REQUEST_ID_HEADER.encode()
        request_id = next(v.decode("latin-1").strip() for k, v in scope["headers"] if k == header)

        async def send_and_forget(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.stamps.pop(request_id)

        await self.app(scope, stamp_at_last_byte(receive, self.stamps, request_id), send_and_forget)


def fastapi_mcp_server(
    segment: AdmittedSegment, arrivals: ArrivalStamps, *, host: str, max_body_bytes: int
) -> Any:
    """The official SDK's server with the one tool; mount its ``streamable_http_app().routes``
    and run its ``session_manager`` in the app's lifespan."""
    from mcp.server.fastmcp import Context, FastMCP
    from mcp.server.fastmcp.utilities.types import Image
    from pydantic import Field

    server = FastMCP(
        SERVER_NAME,
        # bound to loopback, the SDK also refuses requests whose Host/Origin is not local
        host=host,
        stateless_http=True,
        streamable_http_path=FASTAPI_PATH,
        max_request_body_size=max_body_bytes,
        log_level="WARNING",
    )

    @server.tool(name=TOOL_NAME, description=TOOL_DESCRIPTION)
    async def remove_background(
        image: Annotated[str, Field(description=IMAGE_ARG_DESCRIPTION)], ctx: Context
    ) -> Image:
        # the SDK turns any exception into a tool error carrying its message (ImageError: what to fix)
        request = ctx.request_context.request
        request_id = request.headers[REQUEST_ID_HEADER]
        png = await segment(
            request_id, arrivals.pop(request_id), LEDGER_ENDPOINT, lambda: imaging.decode_base64(image)
        )
        return Image(data=png, format="png")

    return server


def call_once(url: str, image: bytes) -> None:
    """One ``tools/call`` with the SDK's own client: the startup warm-up of a server's MCP path."""
    import anyio
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def call() -> None:
        async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(TOOL_NAME, {"image": imaging.encode_base64(image)})
        if result.isError:
            raise RuntimeError(f"warm-up call of MCP tool {TOOL_NAME} failed: {result.content}")

    anyio.run(call)
