"""Raw-HTTP calls of the FastAPI kinds for the server tests (the load generator has its own clients)."""

from __future__ import annotations

import httpx


def segment(base: str, data: bytes, **headers: str) -> httpx.Response:
    """``POST /segment`` with the raw JPEG bytes as the body."""
    return httpx.post(
        f"{base}/segment", content=data, headers={"Content-Type": "image/jpeg", **headers}, timeout=120
    )
