"""Every client against its server on ``sim``: fields filled, client stamps bracket the ledger's,
failures become rows (never exceptions), and inside Locust one event per logical request."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtests.clients import CLIENTS, SERVER_FAMILY, make_client
from loadtests.clients.base import ANY_FAMILY
from loadtests.clients.mcp_protocol import EMPTY_TOOL_ERROR
from loadtests.serverproc import ServerProcess, get_json
from loadtests.session import PlainSession
from tests.helpers.servers import sim_server, small_jpeg

PAIRS = [
    (server, name) for server in ("fastapi", "gradio") for name, c in CLIENTS.items() if c.speaks_to(server)
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    log_dir = tmp_path_factory.mktemp("servers")
    with sim_server("fastapi", log_dir) as fastapi, sim_server("gradio", log_dir) as gradio:
        yield {"fastapi": fastapi, "gradio": gradio}


@pytest.mark.parametrize(("server_kind", "client_name"), PAIRS)
def test_client_fields_and_ledger_stamps(
    servers: dict[str, ServerProcess], server_kind: str, client_name: str
) -> None:
    server = servers[server_kind]
    client = make_client(client_name, small_jpeg())
    session = PlainSession(server.url)
    client.prepare(session, time.time() + 10)
    results = [client.call(session, uuid.uuid4().hex, time.time() + 10) for _ in range(3)]
    ledger = {row["request_id"]: row for row in get_json(server.url + "/ledger")["requests"]}
    for result in results:
        assert result.ok, result.error
        assert result.status == 200 and result.error == "" and result.bytes > 100
        row = ledger[result.request_id]  # the request id reached the server and was echoed in its ledger
        stamps = [row[name] for name in ("t_recv", "t_admit", "t_gpu_start", "t_gpu_end", "t_send")]
        assert result.t_sent <= min(stamps) and max(stamps) <= result.t_done
    if client_name == "gradio-queue":
        assert all(r.queue_rank is not None and r.queue_eta is not None for r in results)


@pytest.mark.parametrize(("server_kind", "client_name"), PAIRS)
def test_failures_are_rows_not_exceptions(
    servers: dict[str, ServerProcess], server_kind: str, client_name: str
) -> None:
    bad = make_client(client_name, b"this is not an image")
    result = bad.call(PlainSession(servers[server_kind].url), uuid.uuid4().hex, time.time() + 10)
    assert not result.ok and result.error and ":" in result.error
    assert result.t_sent <= result.t_done

    refused = make_client(client_name, small_jpeg()).call(
        PlainSession("http://127.0.0.1:9"), uuid.uuid4().hex, time.time() + 5
    )
    assert not refused.ok and refused.status == 0 and refused.error


def test_registry_covers_every_server() -> None:
    assert set(CLIENTS) == {"fastapi", "fastapi-b64", "gradio-file", "gradio-b64", "gradio-queue", "mcp"}
    families = set(SERVER_FAMILY.values())
    assert families == {c.family for c in CLIENTS.values()} - {ANY_FAMILY}
    # MCP is one client for both families (one tool, a path per family)
    assert [name for name, c in CLIENTS.items() if all(c.speaks_to(f) for f in families)] == ["mcp"]
    assert ("gradio", "mcp") in PAIRS and ("fastapi", "mcp") in PAIRS


# Locust monkey-patches the interpreter, so it runs in a child process, as in `gvf run`.
_LOCUST_PROBE = """
import locust, json, sys, time
from locust.env import Environment
from locust.event import Events
from loadtests.locustfile import GvfUser
from loadtests.clients import make_client
url, name, image = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
GvfUser.client_under_test = make_client(name, image)
env = Environment(user_classes=[GvfUser], host=url, events=Events(), stop_timeout=10)
events = []
def on_request(name, context, exception, **_):
    events.append((name, context["gvf"]["request_id"], "" if exception is None else str(exception)))
env.events.request.add_listener(on_request)
runner = env.create_local_runner()
runner.start(3, spawn_rate=100)
time.sleep(1.5)
runner.stop()
runner.quit()
print(json.dumps(events))
"""


@pytest.mark.parametrize(("server_kind", "client_name"), PAIRS)
def test_one_locust_event_per_logical_request(
    servers: dict[str, ServerProcess], server_kind: str, client_name: str, tmp_path: Path
) -> None:
    server = servers[server_kind]
    image = tmp_path / "image.jpg"
    image.write_bytes(small_jpeg())
    urllib.request.urlopen(
        urllib.request.Request(server.url + "/ledger/reset", method="POST", data=b"")
    ).read()
    done = subprocess.run(
        [sys.executable, "-c", _LOCUST_PROBE, server.url, client_name, str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    events = json.loads(done.stdout.strip().splitlines()[-1])
    assert events and all(name == client_name for name, _, _ in events)
    errors = [error for _, _, error in events if error]
    if (server_kind, client_name) == ("gradio", "mcp"):
        # Gradio's loopback client drops a concurrent call now and then (EMPTY_TOOL_ERROR): a
        # failure of the server under test, counted by the harness, never of the client
        assert set(errors) <= {EMPTY_TOOL_ERROR} and len(errors) <= 0.1 * len(events), errors
    else:
        assert not errors, errors
    event_ids = [request_id for _, request_id, _ in events]
    assert len(event_ids) == len(set(event_ids))
    ledger_ids = {row["request_id"] for row in get_json(server.url + "/ledger")["requests"]}
    # graceful stop: every logical request finished, each is one event and one server call
    assert set(event_ids) == ledger_ids


# --- a stream that never completes: the call returns at its deadline, its connection closed


class _EndlessStream(BaseHTTPRequestHandler):
    """Gradio's /call protocol, but the event never completes: the SSE stream only sends a
    heartbeat every ``heartbeat_s`` (Gradio: 15 s) until ``hold_s`` has passed."""

    protocol_version = "HTTP/1.1"
    heartbeat_s = 0.25
    hold_s = 10.0
    disconnected = threading.Event()  # set when a write to the stream failed (client gone)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"event_id": "never"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        end = time.time() + self.hold_s
        try:
            while time.time() < end:
                self._chunk(b"event: heartbeat\ndata: null\n\n")
                time.sleep(min(self.heartbeat_s, max(end - time.time(), 0)))
            self._chunk(b"")  # the stream ends without a complete event
        except OSError:
            type(self).disconnected.set()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def log_message(self, *_args: object) -> None:
        pass


# Locust monkey-patches the interpreter: its session is tried in a child process.
_LOCUST_CALL = """
import locust, json, sys, time
from loadtests.clients import make_client
from loadtests.session import LocustSession
url, timeout_s = sys.argv[1], float(sys.argv[2])
deadline = time.time() + timeout_s
result = make_client("gradio-b64", b"image").call(LocustSession(url), "r1", deadline)
print(json.dumps({"deadline": deadline, "t_done": result.t_done, "error": result.error}))
"""


@pytest.mark.parametrize("heartbeat_s", [0.25, 30.0], ids=["heartbeats", "silent"])
@pytest.mark.parametrize("session_kind", ["urllib3", "locust-fasthttp"])
def test_unfinished_stream_returns_its_timeout_at_the_deadline(heartbeat_s: float, session_kind: str) -> None:
    handler = type(
        "Handler", (_EndlessStream,), {"heartbeat_s": heartbeat_s, "disconnected": threading.Event()}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        if session_kind == "urllib3":
            deadline = time.time() + 1.0
            result = make_client("gradio-b64", b"image").call(PlainSession(url), "r1", deadline)
            outcome = {"deadline": deadline, "t_done": result.t_done, "error": result.error}
        else:
            done = subprocess.run(
                [sys.executable, "-c", _LOCUST_CALL, url, "1.0"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            outcome = json.loads(done.stdout.strip().splitlines()[-1])
        # the stream ends after hold_s (10 s): a session that reads on would return only then
        assert outcome["error"].startswith("timeout"), outcome
        assert outcome["t_done"] - outcome["deadline"] < 1.0, outcome
        if heartbeat_s < 1.0:
            # the connection was closed: the server's next heartbeat write failed
            assert handler.disconnected.wait(3.0)
    finally:
        server.shutdown()
        server.server_close()


def test_b64_png_size_without_decoding_the_image() -> None:
    import base64
    import os

    from loadtests.clients.base import PNG_SIGNATURE, CallError, b64_png_size

    for size in range(8, 40):
        data = PNG_SIGNATURE + os.urandom(size - 8)
        text = base64.b64encode(data).decode()
        assert b64_png_size(text, "x", 200) == size
        assert b64_png_size("data:image/png;base64," + text, "x", 200) == size
    not_png = base64.b64encode(b"GIF89a" + bytes(20)).decode()
    for bad in (None, "", "iVBORw0", "!" * 16, not_png, base64.b64encode(PNG_SIGNATURE).decode() + "A"):
        with pytest.raises(CallError, match="bad result"):
            b64_png_size(bad, "x", 200)
