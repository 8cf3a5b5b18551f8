"""Clients for the ``gradio.Server`` app, speaking Gradio's HTTP protocol directly (docs/design.md §4).

No ``gradio_client``: its own threads and polling would be measured along with the server.
Never ``/gradio_api/run/<name>``: off Spaces it bypasses the queue and its concurrency limit.
"""

from __future__ import annotations

import json
from typing import Any

from urllib3 import encode_multipart_formdata

from loadtests.clients.base import (
    CallError,
    Client,
    ExchangeResult,
    b64_png_size,
    expect_status,
    png_size,
    sse_events,
)
from loadtests.session import Session

API = "/gradio_api"


def _post_json(session: Session, path: str, payload: dict[str, Any], request_id: str, deadline: float) -> Any:
    response = session.request(
        "POST",
        path,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
        deadline=deadline,
    )
    expect_status(response, path)
    return json.loads(response.body)


def _call(session: Session, api_name: str, data: list[Any], request_id: str, deadline: float) -> list[Any]:
    """POST /call/<api_name> then read its SSE stream until ``complete``: the outputs."""
    event_id = _post_json(session, f"{API}/call/{api_name}", {"data": data}, request_id, deadline)["event_id"]
    path = f"{API}/call/{api_name}/{event_id}"
    with session.stream("GET", path, deadline=deadline) as stream:
        if stream.status != 200:
            raise CallError("http", f"{path} answered {stream.status}", stream.status)
        for event, payload in sse_events(stream.lines):
            if event == "complete":
                outputs = json.loads(payload)
                if not isinstance(outputs, list) or not outputs:
                    raise CallError("bad result", f"complete event without outputs: {payload[:200]}", 200)
                return outputs
            if event == "error":
                raise CallError("gradio error", payload[:300] or "(no message)", 200)
    raise CallError("gradio error", "SSE stream ended before a complete event", 200)


class GradioFile(Client):
    name = "gradio-file"
    family = "gradio"
    description = (
        "upload -> /call/segment -> SSE until complete -> download the file "
        "(4 HTTP calls; the reference demo's path)"
    )

    def exchange(self, session: Session, request_id: str, deadline: float) -> ExchangeResult:
        body, content_type = encode_multipart_formdata({"files": ("image", self.image, self.content_type)})
        upload = session.request(
            "POST", f"{API}/upload", body=body, headers={"Content-Type": content_type}, deadline=deadline
        )
        expect_status(upload, "upload")
        server_path = json.loads(upload.body)[0]
        file_data = {"path": server_path, "meta": {"_type": "gradio.FileData"}}
        result = _call(session, "segment", [file_data], request_id, deadline)[0]
        if not isinstance(result, dict) or not (result.get("url") or result.get("path")):
            raise CallError("bad result", f"segment output is not a file: {str(result)[:200]}", 200)
        url = result.get("url") or f"{API}/file={result['path']}"
        download = session.request("GET", url, deadline=deadline)
        expect_status(download, "file download")
        return ExchangeResult(download.status, png_size(download.body, "downloaded file", download.status))


class GradioB64(Client):
    name = "gradio-b64"
    family = "gradio"
    description = "/call/segment_b64 with a base64 string -> SSE until complete (2 HTTP calls)"

    def exchange(self, session: Session, request_id: str, deadline: float) -> ExchangeResult:
        result = _call(session, "segment_b64", [self.image_b64], request_id, deadline)[0]
        return ExchangeResult(200, b64_png_size(result, "segment_b64 output", 200))


class GradioQueue(Client):
    name = "gradio-queue"
    family = "gradio"
    description = "/queue/join + /queue/data (base64) -> SSE with the queue's rank and ETA (2 HTTP calls)"

    fn_index: int | None = None

    def prepare(self, session: Session, deadline: float) -> None:
        for path in ("/config", f"{API}/config"):
            response = session.request("GET", path, deadline=deadline)
            if response.status == 200:
                break
        expect_status(response, "config")
        for position, dependency in enumerate(json.loads(response.body).get("dependencies", [])):
            if dependency.get("api_name") == "segment_b64":
                self.fn_index = int(dependency.get("id", position))
                return
        raise CallError("bad config", "no dependency with api_name segment_b64 in /config")

    def exchange(self, session: Session, request_id: str, deadline: float) -> ExchangeResult:
        if self.fn_index is None:
            self.prepare(session, deadline)
        # one session hash per logical request: its SSE stream then carries only this event
        join = {
            "data": [self.image_b64],
            "fn_index": self.fn_index,
            "session_hash": request_id,
            "event_data": None,
            "trigger_id": None,
        }
        _post_json(session, f"{API}/queue/join", join, request_id, deadline)
        rank: int | None = None
        eta: float | None = None
        path = f"{API}/queue/data?session_hash={request_id}"
        with session.stream("GET", path, deadline=deadline) as stream:
            if stream.status != 200:
                raise CallError("http", f"queue/data answered {stream.status}", stream.status)
            for _event, payload in sse_events(stream.lines):
                message = json.loads(payload) if payload else {}
                kind = message.get("msg")
                if kind == "estimation" and rank is None:
                    rank, eta = message.get("rank"), message.get("rank_eta")
                elif kind == "process_completed":
                    if not message.get("success"):
                        raise CallError("gradio error", str(message.get("output"))[:300], 200)
                    output = message["output"]["data"][0]
                    return ExchangeResult(200, b64_png_size(output, "queue output", 200), rank, eta)
                elif kind == "unexpected_error":
                    raise CallError("gradio error", str(message.get("message"))[:300], 200)
        raise CallError("gradio error", "queue stream ended before process_completed", 200)
