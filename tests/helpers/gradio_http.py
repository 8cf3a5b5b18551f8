"""Raw-HTTP calls of the gradio app for the server tests (the load generator has its own clients)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx


@dataclass
class SSEResult:
    event: str  # "complete" | "error"
    data: object


def call(base: str, name: str, payload: object, request_id: str | None = None) -> SSEResult:
    headers = {"X-Request-ID": request_id} if request_id else {}
    with httpx.Client(timeout=120) as client:
        posted = client.post(f"{base}/gradio_api/call/{name}", json={"data": [payload]}, headers=headers)
        posted.raise_for_status()
        stream = client.get(f"{base}/gradio_api/call/{name}/{posted.json()['event_id']}")
    event, data = "", None
    for line in stream.text.splitlines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            data = json.loads(line.removeprefix("data:").strip())
            break
    return SSEResult(event, data)


def upload(base: str, data: bytes, filename: str = "image.png") -> str:
    response = httpx.post(f"{base}/gradio_api/upload", files={"files": (filename, data)}, timeout=60)
    response.raise_for_status()
    return str(response.json()[0])


def segment_file(base: str, data: bytes) -> bytes:
    """The reference demo's path: upload, call, download the result file."""
    path = upload(base, data)
    result = call(base, "segment", {"path": path, "meta": {"_type": "gradio.FileData"}})
    assert result.event == "complete", result.data
    assert isinstance(result.data, list)
    return httpx.get(result.data[0]["url"], timeout=60).content
