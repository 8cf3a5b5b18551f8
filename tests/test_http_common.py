"""``servers/http_common.py``: request ids (echoed, generated, never empty) and the ledger routes."""

from __future__ import annotations

import httpx

from tests.helpers import fastapi_http, server_state
from tests.helpers.common import PHOTO, StartServer


def test_request_id_is_echoed_and_generated(server_factory: StartServer) -> None:
    server = server_factory("fastapi", "--model", "sim", "--sim-ms", "0")
    assert (
        fastapi_http.segment(server.url, PHOTO, **{"X-Request-ID": "mine-1"}).headers["x-request-id"]
        == "mine-1"
    )
    generated = fastapi_http.segment(server.url, PHOTO).headers["x-request-id"]
    assert generated
    ids = [row["request_id"] for row in httpx.get(f"{server.url}/ledger").json()["requests"]]
    assert ids == ["mine-1", generated]


def test_empty_request_id_gets_a_generated_one(server_factory: StartServer) -> None:
    server = server_factory("fastapi", "--model", "sim", "--sim-ms", "0")
    echoed = fastapi_http.segment(server.url, PHOTO, **{"X-Request-ID": ""}).headers["x-request-id"]
    assert echoed and [row["request_id"] for row in server_state.ledger(server.url)["requests"]] == [echoed]
