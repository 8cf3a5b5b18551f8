"""Bad input gets a clear error, loses nothing, and leaks no slot (FastAPI 4xx, Gradio SSE error)."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from tests.helpers import gradio_http
from tests.helpers.common import PHOTO, StartServer

MAX_SIDE = 256


def oversized_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (MAX_SIDE + 1, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


# (name, raw body bytes, a phrase the message must contain)
BAD_IMAGES = [
    ("not an image", b"hello, I am text", "not an image"),
    ("truncated", PHOTO[: len(PHOTO) // 2], "truncated or corrupt"),
    ("empty", b"", "empty"),
    ("too large", oversized_png(), "the limit is 256x256"),
]


def assert_still_serving(base: str, ok_call) -> None:  # type: ignore[no-untyped-def]
    ok_call()
    ledger = httpx.get(f"{base}/ledger").json()
    assert (ledger["in_flight"], ledger["in_gpu"], ledger["queued"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("fastapi", ()), ("fastapi", ("--lock-scope", "request")), ("fastapi-naive", ())],
    ids=["fastapi-gpu-lock", "fastapi-request-lock", "fastapi-naive"],
)
def test_fastapi_rejects_bad_input_with_4xx(
    server_factory: StartServer, kind: str, extra: tuple[str, ...]
) -> None:
    # with the request lock, decoding runs inside the semaphore: a failure there must release it
    server = server_factory(
        kind, "--model", "sim", "--sim-ms", "5", "--max-side", str(MAX_SIDE), "--max-mb", "1", *extra
    )
    url = server.url
    for name, body, phrase in BAD_IMAGES:
        raw = httpx.post(f"{url}/segment", content=body, headers={"Content-Type": "image/png"})
        assert 400 <= raw.status_code < 500 and phrase in raw.json()["detail"], (name, raw.text)
        b64 = httpx.post(f"{url}/segment_b64", json={"image": base64.b64encode(body).decode()})
        if body:  # empty base64 is refused as such, before any image decoding
            assert 400 <= b64.status_code < 500 and phrase in b64.json()["detail"], (name, b64.text)
        else:
            assert b64.status_code == 400 and "non-empty base64" in b64.json()["detail"], b64.text
    cases = [
        (
            httpx.post(f"{url}/segment", content=PHOTO, headers={"Content-Type": "text/plain"}),
            415,
            "Content-Type",
        ),
        (httpx.post(f"{url}/segment", files={"other": ("a.jpg", PHOTO)}), 400, 'field named "image"'),
        (httpx.post(f"{url}/segment_b64", json={"image": "%%% not base64"}), 400, "not valid base64"),
        (
            httpx.post(
                f"{url}/segment_b64", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            400,
            "not JSON",
        ),
        (httpx.post(f"{url}/segment_b64", json={"picture": "abc"}), 400, 'needs an "image" field'),
        (httpx.post(f"{url}/segment_b64", json={"image": "data:image/png,abc"}), 400, "base64-encoded"),
        (httpx.post(f"{url}/segment", content=b"\0" * 2_000_000), 413, "--max-mb"),
        (httpx.post(f"{url}/segment_b64", json={"image": "A" * 2_000_000}), 413, "--max-mb"),
    ]
    for response, status, phrase in cases:
        assert response.status_code == status and phrase in response.json()["detail"], response.text
    assert_still_serving(url, lambda: httpx.post(f"{url}/segment", content=PHOTO).raise_for_status())


def test_gradio_reports_bad_input_through_its_protocol(server_factory: StartServer) -> None:
    server = server_factory("gradio", "--model", "sim", "--sim-ms", "5", "--max-side", str(MAX_SIDE))
    url = server.url
    for name, body, phrase in BAD_IMAGES:
        result = gradio_http.call(url, "segment_b64", base64.b64encode(body).decode())
        assert result.event == "error" and phrase in result.data["error"], (name, result)
        if body:  # Gradio itself refuses an empty upload
            path = gradio_http.upload(url, body)
            result = gradio_http.call(url, "segment", {"path": path, "meta": {"_type": "gradio.FileData"}})
            assert result.event == "error" and phrase in result.data["error"], (name, result)
    protocol_cases = [
        ("segment_b64", "%%% not base64", "not valid base64"),
        ("segment", {"path": "/etc/passwd"}, "outside the upload folder"),
        ("segment", "just a string", "FileData"),
    ]
    for endpoint, payload, phrase in protocol_cases:
        result = gradio_http.call(url, endpoint, payload)
        assert result.event == "error" and phrase in result.data["error"], result
    # a path with "meta" goes through Gradio's own upload-folder check
    result = gradio_http.call(url, "segment", {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}})
    assert result.event == "error" and "not uploaded by a user" in result.data["error"], result
    malformed = httpx.post(f"{url}/gradio_api/call/segment_b64", content=b"{not json")
    assert malformed.status_code == 422
    assert_still_serving(url, lambda: gradio_http.segment_file(url, PHOTO))
