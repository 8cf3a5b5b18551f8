"""The MCP client: the tool ``remove_background`` on either server family, over MCP's Streamable
HTTP transport spoken directly (JSON-RPC in a POST; the answer as one JSON body or as an SSE
stream of JSON-RPC messages).

One logical request = one ``tools/call`` (one HTTP call). The session set-up (``initialize``,
then the ``notifications/initialized`` notification) is made by :meth:`McpClient.prepare`,
outside every timed span, and timed there on its own (run.json ``client_setup``). Where the
server is stateful (it answers ``initialize`` with an ``Mcp-Session-Id``), every later request
carries that id; both servers of this project are stateless.

Not the ``mcp`` SDK's client: it is asyncio, and the load runs in Locust's gevent users and the
open-loop driver's threads, on the project's own sessions (:mod:`loadtests.session`) like every
client. A test checks that the image this client receives equals the SDK client's.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from loadtests.clients.base import (
    ANY_FAMILY,
    CallError,
    Client,
    ExchangeResult,
    b64_png_size,
    expect_status,
    sse_events,
)
from loadtests.session import Response, Session

TOOL = "remove_background"
# where each server family serves MCP: gradio.Server (launch(mcp_server=True)), then FastAPI's
ENDPOINTS: tuple[str, ...] = ("/gradio_api/mcp/", "/mcp")
PROTOCOL_VERSION = "2025-11-25"  # what the mcp SDK's own client asks for (mcp.types.LATEST_PROTOCOL_VERSION)
SETUP_SAMPLES = 10  # session set-ups timed by prepare(), after one that finds the endpoint
_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
_CLIENT_INFO = {"name": "gvf", "version": "1"}
# A tool error with no text. Gradio 6.31's MCP server answers this when the loopback
# gradio_client it runs each queued tool call through cancels the call: its one shared SSE
# reader, closed by a ``close_stream`` that crosses a new call's join, ends that call too
# (README "MCP"; scripts/repro_gradio_mcp_race.py counts them).
NO_MESSAGE = "(no message)"
EMPTY_TOOL_ERROR = f"tool error: {NO_MESSAGE}"  # the row's error


class McpClient(Client):
    name = "mcp"
    family = ANY_FAMILY
    description = (
        "MCP tools/call remove_background (base64 in, PNG image content out) over Streamable HTTP "
        "(1 HTTP call; the session set-up is outside the timed span, timed on its own)"
    )

    def __init__(self, image: bytes, content_type: str) -> None:
        super().__init__(image, content_type)
        self.endpoint: str | None = None  # found by the first session set-up
        self.session_headers: dict[str, str] = {}  # protocol version, session id where stateful
        # the call's body around its JSON-RPC id, built once: re-serialising the image per call
        # would put megabytes of JSON escaping into every request's latency
        call = {"method": "tools/call", "params": {"name": TOOL, "arguments": {"image": self.image_b64}}}
        self._call_body_tail = b"," + json.dumps(call, separators=(",", ":")).encode()[1:]

    # -- the session set-up, outside the timed span

    def prepare(self, session: Session, deadline: float) -> None:
        """Find the endpoint (one set-up), then time :data:`SETUP_SAMPLES` set-ups on their own."""
        server_info = self.open_session(session, deadline)
        seconds = []
        for _ in range(SETUP_SAMPLES):
            kept = dict(self.session_headers)
            started = time.perf_counter()
            self.open_session(session, deadline)
            seconds.append(time.perf_counter() - started)
            self._close_session(session, kept, deadline)  # the one before; the newest stays in use
        self.preparation = {
            "endpoint": self.endpoint,
            "protocol_version": self.session_headers.get("MCP-Protocol-Version"),
            "stateful": "Mcp-Session-Id" in self.session_headers,
            "server_info": server_info,
            "setup_s": seconds,
            "setup": "initialize + notifications/initialized: 2 HTTP requests on a kept-alive connection",
        }

    def open_session(self, session: Session, deadline: float) -> dict[str, Any]:
        """``initialize`` then ``notifications/initialized``; the first time, at each endpoint in
        turn until one answers. Returns the server's ``serverInfo``."""
        refused = []
        for endpoint in [self.endpoint] if self.endpoint else ENDPOINTS:
            request_id = f"mcp-setup-{uuid.uuid4().hex}"
            initialize = {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": _CLIENT_INFO,
                },
            }
            body = json.dumps(initialize).encode()
            response = self._post(session, endpoint, body, {}, request_id, deadline)
            if response.status in (404, 405) and not self.endpoint:
                refused.append(f"{endpoint} answered {response.status}")
                continue
            result = self._result(response, request_id, f"initialize at {endpoint}")
            headers = {"MCP-Protocol-Version": str(result.get("protocolVersion") or PROTOCOL_VERSION)}
            if "mcp-session-id" in response.headers:
                headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
            initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
            expect_status(
                self._post(session, endpoint, initialized, headers, request_id, deadline),
                f"notifications/initialized at {endpoint}",
            )
            self.endpoint, self.session_headers = endpoint, headers
            return dict(result.get("serverInfo") or {})
        raise CallError(
            "mcp", f"no MCP endpoint: {'; '.join(refused)} (a server started with --no-mcp serves none)"
        )

    def _close_session(self, session: Session, headers: dict[str, str], deadline: float) -> None:
        """End a stateful session no longer used (the spec's DELETE); a stateless one has nothing to end."""
        if "Mcp-Session-Id" in headers and self.endpoint:
            session.request("DELETE", self.endpoint, headers=headers, deadline=deadline)

    # -- one logical request: one tools/call

    def exchange(self, session: Session, request_id: str, deadline: float) -> ExchangeResult:
        if self.endpoint is None:  # a Locust worker builds its client without prepare()
            self.open_session(session, deadline)
        data = image_data(self.call_tool(session, request_id, deadline))
        return ExchangeResult(200, b64_png_size(data, "tool result image", 200))

    def call_tool(self, session: Session, request_id: str, deadline: float) -> dict[str, Any]:
        """The ``tools/call`` result (JSON-RPC id = the request id); raises on an HTTP error, a
        JSON-RPC error or a tool error (``isError``)."""
        assert self.endpoint is not None
        body = b'{"jsonrpc":"2.0","id":' + json.dumps(request_id).encode() + self._call_body_tail
        response = self._post(session, self.endpoint, body, self.session_headers, request_id, deadline)
        result = self._result(response, request_id, f"tools/call {TOOL}")
        if result.get("isError"):
            content = result.get("content") or []
            texts = [str(item.get("text")) for item in content if item.get("type") == "text"]
            raise CallError("tool error", "; ".join(texts)[:300] or NO_MESSAGE, response.status)
        return result

    # -- the transport

    @staticmethod
    def _post(
        session: Session,
        endpoint: str,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
        deadline: float,
    ) -> Response:
        return session.request(
            "POST",
            endpoint,
            body=body,
            headers={**_HEADERS, **headers, "X-Request-ID": request_id},
            deadline=deadline,
        )

    @staticmethod
    def _result(response: Response, rpc_id: str, what: str) -> dict[str, Any]:
        """The ``result`` of the JSON-RPC response to ``rpc_id`` in an answer (JSON or SSE)."""
        expect_status(response, what)
        for message in messages(response):
            if message.get("id") != rpc_id:
                continue  # a notification (progress, log) before the response
            if "error" in message:
                error = message["error"] or {}
                detail = f"{what}: {error.get('code')} {error.get('message')}"
                raise CallError("mcp error", detail, response.status)
            result = message.get("result")
            if isinstance(result, dict):
                return result
        raise CallError("bad result", f"{what}: no JSON-RPC response with id {rpc_id}", response.status)


def messages(response: Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a Streamable HTTP answer: one JSON body (a message or a batch),
    or an SSE stream whose events each carry one message."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        parsed = [json.loads(data) for _event, data in sse_events(response.body.splitlines()) if data]
    else:
        body = json.loads(response.body or b"null")
        parsed = body if isinstance(body, list) else [body]
    return [message for message in parsed if isinstance(message, dict)]


def image_data(result: dict[str, Any]) -> str:
    """The base64 PNG of a tool result's image content (raises when there is none)."""
    for item in result.get("content") or []:
        if item.get("type") == "image":
            mime_type = item.get("mimeType")
            if mime_type != "image/png":
                raise CallError("bad result", f"tool result image is {mime_type}, not image/png", 200)
            return str(item.get("data") or "")
    kinds = [item.get("type") for item in result.get("content") or []]
    raise CallError("bad result", f"tool result holds no image content ({kinds})", 200)
