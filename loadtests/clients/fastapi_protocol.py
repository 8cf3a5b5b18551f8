"""Clients for the hand-rolled FastAPI servers (``fastapi``, ``fastapi-naive``): one HTTP call each."""

from __future__ import annotations

import json

from loadtests.clients.base import Client, ExchangeResult, b64_png_size, expect_status, png_size
from loadtests.session import Session


class FastapiRaw(Client):
    name = "fastapi"
    family = "fastapi"
    description = "POST /segment with the raw image body -> PNG body (1 HTTP call)"

    def exchange(self, session: Session, request_id: str, deadline: float) -> ExchangeResult:
        response = session.request(
            "POST",
            "/segment",
            body=self.image,
            headers={"Content-Type": self.content_type, "X-Request-ID": request_id},
            deadline=deadline,
        )
        expect_status(response, "/segment")
        return ExchangeResult(response.status, png_size(response.body, "/segment body", response.status))


class FastapiB64(Client):
    name = "fastapi-b64"
    family = "fastapi"
    description = 'POST /segment_b64 {"image": base64} -> {"image": base64 PNG} (1 HTTP call)'

    def __init__(self, image: bytes, content_type: str) -> None:
        super().__init__(image, content_type)
        self.body = json.dumps({"image": self.image_b64}).encode()

    def exchange(self, session: Session, request_id: str, deadline: float) -> ExchangeResult:
        response = session.request(
            "POST",
            "/segment_b64",
            body=self.body,
            headers={"Content-Type": "application/json", "X-Request-ID": request_id},
            deadline=deadline,
        )
        expect_status(response, "/segment_b64")
        result = json.loads(response.body).get("image")
        return ExchangeResult(response.status, b64_png_size(result, "/segment_b64 image", response.status))
