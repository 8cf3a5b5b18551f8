"""The client timeout really abandons: at its give-up time the client closes the connection
(FastAPI) or the SSE stream (Gradio), on the urllib3 session and on Locust's, the row says
``abandoned`` with ``t_done`` at that moment, and the server sees the client go: its ledger
row becomes 499, with no GPU stage for a request that was still queued."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loadtests.clients import make_client
from loadtests.session import PlainSession
from reports.load import load_run
from reports.schema import ABANDONED
from tests.helpers import server_state
from tests.helpers.common import StartServer
from tests.helpers.servers import small_jpeg

CLIENT = {"fastapi": "fastapi", "gradio": "gradio-b64"}
SERVICE_MS = 600  # the blocker holds the one GPU slot this long
GIVE_UP_S = 0.25
IMPATIENT = 3

# Locust patches the interpreter (gevent): its session runs in a child process, as in `gvf run`.
# The child imports first and says so, then waits for the word to send (the blocker on the GPU).
_LOCUST_CALLS = """
import locust, gevent, json, sys, time
from loadtests.clients import make_client
from loadtests.session import LocustSession
url, name, image = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
give_up_s, count = float(sys.argv[4]), int(sys.argv[5])
client = make_client(name, image)

def impatient(i):
    now = time.time()
    result = client.call(LocustSession(url), f"impatient-{i}", now + 30, now + give_up_s)
    return {"request_id": result.request_id, "t_give_up": now + give_up_s, "t_done": result.t_done,
            "error": result.error}

print("ready", flush=True)
sys.stdin.readline()
print(json.dumps([g.value for g in gevent.joinall([gevent.spawn(impatient, i) for i in range(count)])]))
"""


class LocustCalls:
    """The impatient calls on Locust's session, in a child process started (and imported) ahead."""

    def __init__(self, url: str, client_name: str, tmp_path: Path) -> None:
        image = tmp_path / "image.jpg"
        image.write_bytes(small_jpeg())
        args = [url, client_name, str(image), str(GIVE_UP_S), str(IMPATIENT)]
        self.child = subprocess.Popen(
            [sys.executable, "-c", _LOCUST_CALLS, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None and self.child.stdout.readline().strip() == "ready"

    def run(self) -> list[dict]:
        out, _ = self.child.communicate("go\n", timeout=60)
        return json.loads(out.strip().splitlines()[-1])


def _urllib3_calls(url: str, client_name: str) -> list[dict]:
    client = make_client(client_name, small_jpeg())
    results: list[dict] = []

    def impatient(i: int) -> None:
        now = time.time()
        result = client.call(PlainSession(url), f"impatient-{i}", now + 30, now + GIVE_UP_S)
        results.append(
            {
                "request_id": result.request_id,
                "t_give_up": now + GIVE_UP_S,
                "t_done": result.t_done,
                "error": result.error,
            }
        )

    threads = [threading.Thread(target=impatient, args=(i,)) for i in range(IMPATIENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("session_kind", ["urllib3", "locust-fasthttp"])
@pytest.mark.parametrize("kind", ["fastapi", "gradio"])
def test_a_client_that_gives_up_closes_and_the_server_sees_it_go(
    server_factory: StartServer, kind: str, session_kind: str, tmp_path: Path
) -> None:
    server = server_factory(kind, "--model", "sim", "--sim-ms", str(SERVICE_MS), "--concurrency", "1")
    locust_calls = LocustCalls(server.url, CLIENT[kind], tmp_path) if session_kind != "urllib3" else None
    client = make_client(CLIENT[kind], small_jpeg())
    session = PlainSession(server.url)
    client.prepare(session, time.time() + 10)
    blocker: list = []
    holding = threading.Thread(
        target=lambda: blocker.append(client.call(session, "blocker", time.time() + 30)), daemon=True
    )
    holding.start()
    deadline = time.monotonic() + 10
    while server_state.ledger(server.url)["in_gpu"] == 0:  # the blocker holds the only slot
        assert time.monotonic() < deadline, "the blocker never reached the GPU"
        time.sleep(0.01)

    results = locust_calls.run() if locust_calls else _urllib3_calls(server.url, CLIENT[kind])
    holding.join(30)

    assert len(results) == IMPATIENT
    for result in results:
        assert result["error"].startswith(f"{ABANDONED}:"), result
        # t_done is the moment it gave up: not before its due time (the timeout counts from the
        # call, not from the send, which comes later), and long before the blocker ended
        late = result["t_done"] - result["t_give_up"]
        assert -0.02 <= late < 0.25, result
    assert blocker and blocker[0].ok, blocker
    rows = {row["request_id"]: row for row in server_state.wait_idle(server.url)["requests"]}
    for result in results:
        row = rows[result["request_id"]]
        # the server saw the client go while it was queued: 499, and no GPU time spent on it
        assert row["status"] == 499 and row["t_gpu_start"] is None, row
        assert row["stage"] == "queued", row
    assert rows["blocker"]["status"] == 200


def test_gvf_run_client_timeout_abandons_in_closed_loop(tmp_path: Path) -> None:
    # every request gives up after 5 ms, long before the simulated GPU's 20 ms: Locust's users
    # close their connections and the server records each request as gone
    command = [
        sys.executable,
        "-m",
        "loadtests.cli",
        "run",
        "--profile",
        "smoke",
        "--scenarios",
        "throughput",
    ]
    done = subprocess.run(
        [
            *command,
            "--servers",
            "fastapi",
            "--client-timeout-s",
            "0.005",
            "--no-report",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(run_dir)
    assert run.meta["client_timeout_s"] == 0.005
    assert {p.give_up_s for p in run.points} == {0.005} and {p.give_up_share for p in run.points} == {1.0}
    rows = run.table
    assert len(rows) > 10 and rows["error"].str.startswith(f"{ABANDONED}:").all()
    # t_done is when the client gave up: its timeout counts from the call, a moment before the
    # send, so only its order is certain; later only by what the load process's own scheduling
    # adds (generous bounds: the box is shared)
    waited = rows["t_done"] - rows["t_sent"]
    assert (waited > 0).all() and waited.median() < 0.05 and (waited < 2).all(), waited.describe()
    # the server sees almost every client go (499). Races on a shared box, each rare: a client
    # that leaves before its request has arrived whole leaves no ledger row; one whose answer was
    # on its way as it left, or was read whole before the load process's timer fired (abandoned
    # too: the client would not have waited), gets a 200
    statuses = rows["server_status"].fillna(0)
    closed = rows["error"].str.contains("closed its connection")
    assert statuses.isin([499, 200, 0]).all(), statuses.value_counts()
    assert (statuses[closed] == 499).mean() > 0.8 and closed.mean() > 0.8, statuses.value_counts()
