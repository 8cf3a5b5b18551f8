"""What the load generator itself costs, per client, at two image sizes: the latency it adds on
top of the server's handler time beyond moving the bytes, the CPU it spends per request, and the
requests/s one load process sustains.

Runs ``gvf``'s own orchestrator against ``sim --sim-ms 0`` (no model time at all) with each
client, once with a 256² JPEG and once with a 1080p JPEG, the output a cutout (RGBA PNG at the
input's size: the reference demo's result, ~2 MB at 1080p), then reads each run's table back
through ``reports``:

- ``added_ms`` (p50, and p99 at 256² / p90 at 1080p): client latency minus the handler's span
  (ledger ``t_send − t_recv``), 1 user back to back: transport + framework routing + the
  client's own work. ``bytes_ms``: the same bytes (request and answer as they travel: base64
  where the protocol uses it) copied once through a loopback TCP socket, measured here;
  ``beyond_bytes_ms`` = ``added_ms`` p50 − ``bytes_ms``: what HTTP, the protocol and the client
  add beyond moving the bytes. Target < 2 ms at the median for the ``fastapi`` client at 256²;
  the Gradio clients' figure measures Gradio's protocol, not the harness.
- ``rps``: logical requests per second over a closed-loop window with many users; the load
  process's CPU (% of one core) meanwhile, and that CPU per request (``cpu_ms_per_request``).
- the same single-stream figure for the plain (urllib3) session used by the open-loop driver.

    .venv/bin/python scripts/bench_harness.py [--out DIR] [--users 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import locust  # noqa: F401  (gevent must patch before anything else imports ssl)
import pandas as pd

from loadtests.clients import make_client
from loadtests.orchestrate import RunOptions, run
from loadtests.progress import Progress
from loadtests.scenarios import (
    LARGE_IMAGE,
    SMALL_IMAGE,
    LatencyScenario,
    Percentile,
    Profile,
    ThroughputScenario,
)
from loadtests.serverproc import get_json, start_server
from loadtests.session import PlainSession
from reports.load import load_run
from reports.metrics.rows import percentile
from reports.schema import ScenarioName

SIM_ARGS = ("--sim-ms", "0", "--output", "cutout")
CLIENTS = ["fastapi", "fastapi-b64", "gradio-b64", "gradio-file", "gradio-queue"]
B64_CLIENTS = {"fastapi-b64", "gradio-b64", "gradio-queue"}  # image in and out as base64 text
# image -> (its name in the output, the tail percentile its single-stream sample supports)
SIZES: dict[str, tuple[Path, Percentile]] = {"256px": (SMALL_IMAGE, "p99"), "1080p": (LARGE_IMAGE, "p90")}
_FLOORS = {"p90": 64, "p99": 662}


def loopback_bytes_per_s(total: int = 64 * 1024 * 1024, chunk: int = 64 * 1024) -> float:
    """How fast one loopback TCP connection moves bytes from one thread to another here."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def send() -> None:
            with socket.create_connection(("127.0.0.1", port)) as out:
                out.sendall(b"\0" * total)

        sender = threading.Thread(target=send)
        started = time.perf_counter()
        sender.start()
        connection, _ = server.accept()
        received = 0
        with connection:
            while received < total:
                data = connection.recv(chunk)
                if not data:
                    break
                received += len(data)
        sender.join()
        return received / (time.perf_counter() - started)


def _added_ms(rows: pd.DataFrame, tail: float, floor: int) -> tuple[float | None, float | None]:
    added = ((rows["t_done"] - rows["t_sent"]) - (rows["t_send"] - rows["t_recv"])) * 1000
    return percentile(added, 0.5, 1), percentile(added, tail, floor)


def _plain_session_added_ms(
    image: Path, requests: int, tail: float, floor: int
) -> tuple[float | None, float | None]:
    """The open-loop driver's session, outside Locust and gevent's scheduler."""
    server = start_server("fastapi", ["--model", "sim", *SIM_ARGS])
    try:
        session = PlainSession(server.url)
        client = make_client("fastapi", image.read_bytes())
        results = [client.call(session, uuid.uuid4().hex, time.time() + 30) for _ in range(requests)]
        ledger = {r["request_id"]: r for r in get_json(server.url + "/ledger")["requests"]}
    finally:
        server.stop()
    rows = pd.DataFrame(
        {
            "t_sent": [r.t_sent for r in results],
            "t_done": [r.t_done for r in results],
            "t_recv": [ledger[r.request_id]["t_recv"] for r in results],
            "t_send": [ledger[r.request_id]["t_send"] for r in results],
        }
    )
    return _added_ms(rows, tail, floor)


def _wire_bytes(client: str, image_bytes: int, result_bytes: float) -> float:
    """The request's image and its answer as they travel (base64 text is 4/3 of the bytes)."""
    factor = 4 / 3 if client in B64_CLIENTS else 1.0
    return factor * (image_bytes + result_bytes)


def measure_size(image: Path, tail_name: Percentile, args: argparse.Namespace, bytes_per_s: float) -> dict:
    """Every client against sim 0 ms with ``image`` in and a cutout out; the figures per client."""
    tail = int(tail_name[1:]) / 100
    floor = _FLOORS[tail_name]
    profile = Profile(
        name="bench-harness",
        description="sim --sim-ms 0: the harness's own cost",
        model="sim",
        image=image,
        server_args=SIM_ARGS,
        request_timeout_s=60.0,
        scenarios={
            ScenarioName.LATENCY: LatencyScenario(percentile=tail_name, max_s=args.seconds * 6),
            ScenarioName.THROUGHPUT: ThroughputScenario(
                users=(args.users,), requests=10**9, max_s=args.seconds
            ),
        },
    )
    options = RunOptions(
        profile=profile,
        servers=["fastapi", "gradio"],
        scenarios=[ScenarioName.LATENCY, ScenarioName.THROUGHPUT],
        out_dir=args.out,
        image=image,
        model="sim",
        clients=CLIENTS,
        build_report=False,
        gradio_profiling=False,  # the harness alone
    )
    outcome = run(options, Progress())
    if outcome.outcome != "complete":
        raise RuntimeError(f"run {outcome.outcome}: {outcome.detail}")
    loaded = load_run(outcome.run_dir)
    table = loaded.table[loaded.table["ok"]]
    image_bytes = image.stat().st_size
    figures: dict[str, dict[str, float | None]] = {}
    for point in loaded.points:
        rows = table[
            (table["client"] == point.client)
            & (table["load_point"] == point.load_point)
            & (table["scenario"] == point.scenario)
        ]
        entry = figures.setdefault(point.client, {})
        if point.scenario == ScenarioName.LATENCY:
            p50, p_tail = _added_ms(rows, tail, floor)
            wire = _wire_bytes(point.client, image_bytes, float(rows["bytes"].median()))
            entry["added_ms_p50"], entry[f"added_ms_{tail_name}"] = p50, p_tail
            entry["wire_mb"] = wire / 1e6
            entry["bytes_ms"] = wire / bytes_per_s * 1000
            entry["beyond_bytes_ms"] = None if p50 is None else p50 - entry["bytes_ms"]
            entry["single_stream_requests"] = float(len(rows))
        else:
            in_window = rows[(rows["t_done"] >= point.t_start) & (rows["t_done"] <= point.t_end)]
            rps = len(in_window) / (point.t_end - point.t_start)
            entry[f"rps_{args.users}_users"] = rps
            entry["load_cpu_percent"] = point.load_cpu_percent
            cpu = point.load_cpu_percent
            entry["cpu_ms_per_request"] = None if cpu is None or not rps else cpu / 100 / rps * 1000
    plain = _plain_session_added_ms(image, min(floor * 2, 1000), tail, floor)
    figures["fastapi (plain urllib3 session, open-loop driver)"] = {
        "added_ms_p50": plain[0],
        f"added_ms_{tail_name}": plain[1],
    }
    return {"run_dir": str(outcome.run_dir), "image_bytes": image_bytes, "figures": figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/runs"))
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    bytes_per_s = loopback_bytes_per_s()
    report = {"loopback_bytes_per_s": bytes_per_s, "output": "cutout (RGBA PNG at the input's size)"}
    for size, (image, tail_name) in SIZES.items():
        try:
            report[size] = measure_size(image, tail_name, args, bytes_per_s)
        except RuntimeError as error:
            print(f"{size}: {error}", file=sys.stderr)
            return 1
    print(json.dumps(report, indent=2))
    out = Path(report["1080p"]["run_dir"]) / "bench_harness.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
