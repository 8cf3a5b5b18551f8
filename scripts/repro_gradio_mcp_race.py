"""Reproduce and count Gradio's empty MCP tool errors under concurrent tool calls.

Gradio runs each queued MCP tool call through a loopback ``gradio_client`` whose calls all share
one SSE reader. When the server's ``close_stream`` (sent as the session's last pending event
completes) crosses a new call's ``/queue/join``, the reader ends and takes the new call with it:
the client cancels a call its server is still running, and the MCP answer is a tool error with
no text. This script starts a gradio server and a FastAPI server (the control: the ``mcp``
SDK's server, no loopback) on ``sim``, has ``--users`` threads make ``--calls`` tool calls each
on every server, optionally beside ``--burners`` busy processes (the race widens when the
loopback client's threads run late, as on a loaded 2-core box), and prints per server the share
of calls that came back as that empty tool error with its 95 % Wilson interval, and the server
status of those calls (200: the server ran them to the end). On ``sim``: no GPU.

    python scripts/repro_gradio_mcp_race.py [--users 3] [--calls 300] [--burners 0]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from loadtests.clients import make_client
from loadtests.clients.base import CallResult
from loadtests.clients.mcp_protocol import EMPTY_TOOL_ERROR
from loadtests.serverproc import ServerProcess, get_json, start_server
from loadtests.session import PlainSession
from reports.metrics.intervals import proportion_interval

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "loadtests" / "data" / "scene-256.jpg"
SIM_ARGS = ["--model", "sim", "--sim-ms", "20"]


def burn() -> None:
    while True:
        pass


def tool_calls(server: ServerProcess, users: int, calls: int) -> list[CallResult]:
    client = make_client("mcp", IMAGE.read_bytes())
    client.prepare(PlainSession(server.url), time.time() + 60)
    results: list[CallResult] = []

    def user() -> None:
        session = PlainSession(server.url)
        for _ in range(calls):
            results.append(client.call(session, uuid.uuid4().hex, time.time() + 60))

    threads = [threading.Thread(target=user) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=3, help="concurrent tool-calling threads")
    parser.add_argument("--calls", type=int, default=300, help="tool calls per user per server")
    parser.add_argument("--burners", type=int, default=0, help="busy processes beside the run")
    args = parser.parse_args()
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.burners)]
    print(
        f"{args.users} users x {args.calls} tool calls per server, {args.burners} busy processes beside; "
        f"model {' '.join(SIM_ARGS[1:])} ms (a simulated GPU, no weights), {IMAGE.name}"
    )
    for process in burners:
        process.start()
    with tempfile.TemporaryDirectory() as logs:
        for kind in ("gradio", "fastapi"):
            server = start_server(kind, SIM_ARGS, log_path=Path(logs) / f"{kind}.log")
            try:
                results = tool_calls(server, args.users, args.calls)
                ledger = {row["request_id"]: row for row in get_json(server.url + "/ledger")["requests"]}
            finally:
                server.stop()
            empty = [r for r in results if r.error == EMPTY_TOOL_ERROR]
            failed = [r.error for r in results if not r.ok]
            other = Counter(error.split(":")[0] for error in failed if error != EMPTY_TOOL_ERROR)
            share = proportion_interval(len(empty), len(results))
            assert share is not None
            statuses = Counter(ledger.get(r.request_id, {}).get("status") for r in empty)
            print(
                f"{kind:8s} empty tool errors {len(empty)} of {len(results)}: "
                f"{100 * share.estimate:.2f} % [{100 * share.low:.2f}, {100 * share.high:.2f}] "
                f"({share.method}); their server status {dict(statuses) or '-'}; "
                f"other failures {dict(other) or 'none'}"
            )
    for process in burners:
        process.terminate()


if __name__ == "__main__":
    main()
