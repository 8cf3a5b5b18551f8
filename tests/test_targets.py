"""The server under test: KIND:FLAG parsing, the ledger kept across resets and pulls, idleness,
a dead server noticed, and the family of a --target-url server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from loadtests.clients import make_client
from loadtests.recorder import Recorder
from loadtests.serverproc import get_json
from loadtests.session import PlainSession
from loadtests.targets import (
    TARGET_URL_LABEL,
    ServerDied,
    Target,
    UnknownServerKind,
    external_target,
    guess_family,
    refusal_message,
    server_args_for,
    split_server_arg,
)
from reports.schema import LEDGER_FILE
from tests.helpers.servers import sim_server, small_jpeg


def test_split_server_arg() -> None:
    assert split_server_arg("gradio:--concurrency=2") == ("gradio", "--concurrency=2")
    assert split_server_arg("fastapi-naive:--png-level=3") == ("fastapi-naive", "--png-level=3")
    # no kind: a plain flag, a flag whose value holds a colon, a value that is not a flag
    assert split_server_arg("--png-level=3") == (None, "--png-level=3")
    assert split_server_arg("--weights=C:/w") == (None, "--weights=C:/w")
    assert split_server_arg("http://host:1") == (None, "http://host:1")
    with pytest.raises(UnknownServerKind, match="unknown server kind 'fastapi-nave'; known: gradio"):
        split_server_arg("fastapi-nave:--concurrency=2")


def test_server_args_go_to_their_kind_in_order() -> None:
    args = ["gradio:--concurrency=2", "--png-level=3", "fastapi:--lock-scope=request", "--weights=C:/w"]
    assert server_args_for("gradio", args) == ["--concurrency=2", "--png-level=3", "--weights=C:/w"]
    assert server_args_for("fastapi", args) == ["--png-level=3", "--lock-scope=request", "--weights=C:/w"]
    assert server_args_for("fastapi-naive", args) == ["--png-level=3", "--weights=C:/w"]


def test_refusal_message_quotes_the_server_and_says_how_to_target_one_kind() -> None:
    error = (
        "fastapi-naive exited with code 2 before it was ready:\nusage: ...\n"
        "__main__.py: error: --concurrency means nothing here"
    )
    message = refusal_message("fastapi-naive", error)
    assert "__main__.py: error: --concurrency means nothing here" in message
    assert "--server-arg=fastapi-naive:FLAG" in message


def test_ledger_rows_survive_resets_and_pulls(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    with sim_server("fastapi", tmp_path) as server:
        target = Target("fastapi", server.url, server, "fastapi")
        client = make_client("fastapi", small_jpeg())
        session = PlainSession(server.url)
        before = [client.call(session, uuid.uuid4().hex, time.time() + 10) for _ in range(2)]
        target.reset_ledger(recorder)  # the rows it clears are kept
        assert get_json(server.url + "/ledger")["requests"] == []
        during = [client.call(session, uuid.uuid4().hex, time.time() + 10) for _ in range(3)]
        counters = target.pull_ledger(recorder)
        target.pull_ledger(recorder)  # a second pull adds nothing twice
    recorder.close()
    assert all(r.ok for r in before + during)
    assert set(target.ledger_rows) == {r.request_id for r in before + during}
    assert counters["dropped"] == 0 and len(counters["requests"]) == 3
    saved = [json.loads(line) for line in (tmp_path / LEDGER_FILE).read_text().splitlines()]
    assert sorted(row["request_id"] for row in saved) == sorted(target.ledger_rows)
    assert {row["server"] for row in saved} == {"fastapi"}


def test_a_dead_server_is_noticed(tmp_path: Path) -> None:
    with sim_server("fastapi", tmp_path) as server:
        target = Target("fastapi", server.url, server, "fastapi")
        target.check_alive()
    with pytest.raises(ServerDied, match=r"fastapi .* during the run"):
        target.check_alive()


class _Json(BaseHTTPRequestHandler):
    """Answers GET with ``answers[path]`` as JSON, 404 for any other path."""

    answers: ClassVar[dict[str, dict[str, object]]] = {}

    def do_GET(self) -> None:
        answer = self.answers.get(self.path)
        body = json.dumps(answer).encode() if answer is not None else b"not found"
        self.send_response(200 if answer is not None else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def _serving(answers: dict[str, dict[str, object]]) -> Iterator[str]:
    handler = type("Handler", (_Json,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_requests_in_the_server_count_gradios_queue_apart() -> None:
    for family, answer, held in [
        ("gradio", {"in_flight": 0, "queued": 2}, 2),  # events waiting in Gradio's queue
        ("gradio", {"in_flight": 1, "queued": 2}, 3),  # Gradio's row opens when its function starts
        ("fastapi", {"in_flight": 3, "queued": 2}, 3),  # FastAPI's waiters are in flight already
        ("fastapi", {"in_flight": 1, "queued": 0}, 1),
        ("gradio", {"in_flight": 0, "queued": 0}, 0),
        ("fastapi", {"in_flight": 0}, 0),  # an older server without "queued"
    ]:
        with _serving({"/ledger": {"requests": [], **answer}}) as url:
            # a server we started (process not None: it has a ledger)
            target = Target(family, url, object(), family)  # type: ignore[arg-type]
            assert target.in_server() == held, (family, answer)


def test_target_url_family_from_health_else_from_gradio_config(tmp_path: Path) -> None:
    with sim_server("fastapi", tmp_path) as server:
        target, health = external_target(server.url + "/")
    assert (target.label, target.url, target.family) == (TARGET_URL_LABEL, server.url, "fastapi")
    assert target.process is None and not target.has_ledger and health["server"] == "fastapi"
    with _serving({"/config": {"dependencies": []}}) as url:
        target, health = external_target(url)
        assert (target.family, health) == ("gradio", {})
    with _serving({}) as url:
        assert guess_family(url) == "fastapi"
