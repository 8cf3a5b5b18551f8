"""What the load generator itself costs: requests/s one load process sustains, and the latency
it adds on top of the server's handler time (client latency − ledger t_send − t_recv).

Runs ``gvf``'s own orchestrator against ``sim --sim-ms 0`` (no model time at all) with each
client, then reads the run's table back through ``reports``:

- ``added_ms`` (p50, p99): client latency minus the handler's span, 1 user back to back; it is
  transport + framework routing + the client's own work. Target < 2 ms at the median for the
  ``fastapi`` client; the Gradio clients' figure measures Gradio's protocol, not the harness.
- ``rps``: logical requests per second over a closed-loop window with many users, and the load
  process's CPU (% of one core) meanwhile.
- the same single-stream figure for the plain (urllib3) session used by the open-loop driver.

    .venv/bin/python scripts/bench_harness.py [--out DIR] [--users 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import locust  # noqa: F401  (gevent must patch before anything else imports ssl)
import pandas as pd

from loadtests.clients import make_client
from loadtests.orchestrate import RunOptions, run
from loadtests.progress import Progress
from loadtests.scenarios import SMALL_IMAGE, LatencyScenario, Profile, ThroughputScenario
from loadtests.serverproc import get_json, start_server
from loadtests.session import PlainSession
from reports.load import load_run
from reports.metrics.rows import percentile
from reports.schema import ScenarioName


def _added_ms(rows: pd.DataFrame) -> tuple[float | None, float | None]:
    added = ((rows["t_done"] - rows["t_sent"]) - (rows["t_send"] - rows["t_recv"])) * 1000
    return percentile(added, 0.5, 1), percentile(added, 0.99, 662)


def _plain_session_added_ms(requests: int) -> tuple[float | None, float | None]:
    """The open-loop driver's session, outside Locust and gevent's scheduler."""
    server = start_server("fastapi", ["--model", "sim", "--sim-ms", "0"])
    try:
        session = PlainSession(server.url)
        client = make_client("fastapi", SMALL_IMAGE.read_bytes())
        results = [client.call(session, uuid.uuid4().hex, time.time() + 10) for _ in range(requests)]
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
    return _added_ms(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/runs"))
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    profile = Profile(
        name="bench-harness",
        description="sim --sim-ms 0: the harness's own cost",
        model="sim",
        image=SMALL_IMAGE,
        server_args=("--sim-ms", "0"),
        request_timeout_s=30.0,
        scenarios={
            ScenarioName.LATENCY: LatencyScenario(percentile="p99", max_s=args.seconds * 2),
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
        image=SMALL_IMAGE,
        model="sim",
        clients=["fastapi", "fastapi-b64", "gradio-b64", "gradio-file", "gradio-queue"],
        build_report=False,
    )
    outcome = run(options, Progress())
    if outcome.outcome != "complete":
        print(f"run {outcome.outcome}: {outcome.detail}", file=sys.stderr)
        return 1
    loaded = load_run(outcome.run_dir)
    table = loaded.table[loaded.table["ok"]]
    figures: dict[str, dict[str, float | None]] = {}
    for point in loaded.points:
        rows = table[
            (table["client"] == point.client)
            & (table["load_point"] == point.load_point)
            & (table["scenario"] == point.scenario)
        ]
        entry = figures.setdefault(point.client, {})
        if point.scenario == ScenarioName.LATENCY:
            entry["added_ms_p50"], entry["added_ms_p99"] = _added_ms(rows)
            entry["single_stream_requests"] = float(len(rows))
        else:
            in_window = rows[(rows["t_done"] >= point.t_start) & (rows["t_done"] <= point.t_end)]
            entry[f"rps_{args.users}_users"] = len(in_window) / (point.t_end - point.t_start)
            entry["load_cpu_percent"] = point.load_cpu_percent
    plain_p50, plain_p99 = _plain_session_added_ms(1000)
    figures["fastapi (plain urllib3 session, open-loop driver)"] = {
        "added_ms_p50": plain_p50,
        "added_ms_p99": plain_p99,
    }
    print(json.dumps({"run_dir": str(outcome.run_dir), "figures": figures}, indent=2))
    (outcome.run_dir / "bench_harness.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
