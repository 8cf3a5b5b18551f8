"""Benchmark: what each server adds to the in-process pipeline, and how busy it keeps the GPU.

(a) One sequential client: each request paired with the same pipeline (pre + GPU + post) called
    in-process right before it; the median of the differences is the server's added latency.
(b) Eight concurrent closed-loop clients: GPU-stage utilisation from the server's ledger
    (sum of GPU intervals / wall time of the run).
(c) What Gradio's own profiler (``GRADIO_PROFILING=1``) costs per request: two gradio servers,
    one profiling, called alternately (each pair of calls shares the machine's state of the
    moment; the first of a pair alternates; the server not called waits paused); the median of
    the paired differences, with its bootstrap 95% interval. ``gvf run`` collects the profiler's
    traces only when this cost stays under the 2 ms disagreement they are there to check.

Both on ``sim --sim-ms 50`` (a simulated GPU: the figures describe the servers, not a GPU)
with a small image, every server in one run so the ratios share the machine's state.
Targets for ``fastapi``: <= 2 ms added, >= 97 % utilisation. Gradio is measured as it is.

    python scripts/bench_servers.py [--requests 60] [--profiler-pairs 200] [--out reports/runs/bench]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from loadtests.clients import make_client
from loadtests.profiler import PROFILING_ENV
from loadtests.serverproc import ServerProcess, start_server
from loadtests.session import PlainSession
from reports.metrics.intervals import bootstrap_interval, quantile_of_rows
from reports.metrics.rows import mean_in_flight, percentile
from servers.core.backends.sim import SimBackend
from servers.core.imaging import sample_png
from servers.core.segmenter import Segmenter

SIM_MS = 50.0
SIM_ARGS = ["--model", "sim", "--sim-ms", str(SIM_MS)]
IMAGE = sample_png(128)
CLIENTS = 8

Call = Callable[[PlainSession], None]


def client_call(name: str) -> Call:
    """The load generator's own client for that protocol, on its low-overhead urllib3 session:
    what is measured is the server, not an HTTP library."""
    client = make_client(name, IMAGE)

    def call(session: PlainSession) -> None:
        result = client.call(session, uuid.uuid4().hex, time.time() + 60)
        if not result.ok:
            raise RuntimeError(f"{name}: {result.error}")

    return call


def median_ms(seconds: list[float] | np.ndarray) -> float:
    value = percentile(pd.Series(seconds, dtype=float), 0.5, 1)
    assert value is not None
    return value * 1000.0


def paired_seconds(
    base: str, call: Call, segmenter: Segmenter, requests: int
) -> tuple[list[float], list[float]]:
    """Each server call right after the same pipeline in-process: the pair shares the machine's
    state of the moment, so their difference survives drift that separate series would not."""
    session = PlainSession(base)
    for _ in range(5):  # connection set-up and first-call costs stay out
        call(session)
        segmenter.segment(IMAGE)
    in_process, served = [], []
    for _ in range(requests):
        started = time.perf_counter()
        segmenter.segment(IMAGE)
        in_process.append(time.perf_counter() - started)
        started = time.perf_counter()
        call(session)
        served.append(time.perf_counter() - started)
    return in_process, served


def concurrent_utilisation(base: str, call: Call, per_client: int) -> float:
    httpx.post(f"{base}/ledger/reset").raise_for_status()
    barrier = threading.Barrier(CLIENTS)
    window: list[float] = []

    def client_loop() -> None:
        session = PlainSession(base)
        barrier.wait()
        window.append(time.time())
        for _ in range(per_client):
            call(session)
        window.append(time.time())

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = pd.DataFrame(httpx.get(f"{base}/ledger").json()["requests"])
    return mean_in_flight(
        rows["t_gpu_start"].to_numpy(float), rows["t_gpu_end"].to_numpy(float), min(window), max(window)
    )


def profiler_cost(pairs: int) -> dict[str, float]:
    """Median extra time per request of a gradio server that profiles, over ``pairs`` paired calls."""
    call = client_call("gradio-b64")
    servers: list[ServerProcess] = []
    try:
        servers.append(start_server("gradio", SIM_ARGS))
        servers.append(start_server("gradio", SIM_ARGS, env=PROFILING_ENV))
        sessions = [PlainSession(server.url) for server in servers]

        def timed(index: int) -> float:
            servers[index].resume()
            started = time.perf_counter()
            call(sessions[index])
            elapsed = time.perf_counter() - started
            servers[index].pause()
            return elapsed

        for server in servers:
            server.pause()
        for _ in range(5):  # connection set-up and first-call costs stay out
            timed(0), timed(1)
        differences = []
        for i in range(pairs):
            first = i % 2
            seconds = {first: timed(first), 1 - first: timed(1 - first)}
            differences.append(seconds[1] - seconds[0])
        servers[1].resume()
        traces = httpx.get(f"{servers[1].url}/gradio_api/profiling/summary").json()["count"]
    finally:
        for server in servers:
            server.stop()
    interval = bootstrap_interval(np.asarray(differences) * 1000.0, quantile_of_rows(0.5))
    assert interval is not None
    return {
        "added_ms": round(interval.estimate, 3),
        "added_ms_ci95_low": round(interval.low, 3),
        "added_ms_ci95_high": round(interval.high, 3),
        "pairs": pairs,
        "traces_recorded": traces,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="sequential requests per server")
    parser.add_argument("--per-client", type=int, default=15, help="requests per concurrent client")
    parser.add_argument("--profiler-pairs", type=int, default=200, help="paired calls for (c)")
    parser.add_argument("--out", type=Path, default=Path("reports/runs/bench"))
    args = parser.parse_args()

    segmenter = Segmenter(SimBackend(SIM_MS))
    servers = {
        "fastapi": ("fastapi", [], "fastapi"),
        "fastapi (lock scope request)": ("fastapi", ["--lock-scope", "request"], "fastapi"),
        "gradio (segment_b64)": ("gradio", [], "gradio-b64"),
    }
    results: dict[str, dict[str, float]] = {}
    for label, (kind, extra, client_name) in servers.items():
        server = start_server(kind, [*SIM_ARGS, *extra])
        try:
            call = client_call(client_name)
            in_process, served = paired_seconds(server.url, call, segmenter, args.requests)
            utilisation = concurrent_utilisation(server.url, call, args.per_client)
        finally:
            server.stop()
        results[label] = {
            "median_in_process_ms": round(median_ms(in_process), 2),
            "median_client_ms": round(median_ms(served), 2),
            "added_ms": round(median_ms(np.subtract(served, in_process)), 2),
            "gpu_utilisation_8_clients": round(utilisation, 4),
        }
    profiler = profiler_cost(args.profiler_pairs)

    report = {
        "benchmark": "bench_servers",
        "when": datetime.now().isoformat(timespec="seconds"),
        "backend": f"sim (simulated GPU, {SIM_MS:g} ms per call) — not a real GPU",
        "image": "128x128 PNG",
        "client": "loadtests clients on the plain urllib3 session (fastapi, gradio-b64)",
        "requests_sequential": args.requests,
        "clients_concurrent": CLIENTS,
        "servers": results,
        "gradio_profiler": profiler,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-servers-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"{report['backend']}; added = median of (served − in-process) over adjacent pairs")
    print(f"{'server':32} {'in-process':>11} {'served':>10} {'added':>9} {'GPU util (8 clients)':>21}")
    for label, row in results.items():
        print(
            f"{label:32} {row['median_in_process_ms']:>8.2f} ms {row['median_client_ms']:>7.2f} ms"
            f" {row['added_ms']:>6.2f} ms {row['gpu_utilisation_8_clients'] * 100:>20.1f}%"
        )
    print(
        f"gradio profiler (GRADIO_PROFILING=1): {profiler['added_ms']:+.3f} ms per request "
        f"(95% CI {profiler['added_ms_ci95_low']:+.3f} to {profiler['added_ms_ci95_high']:+.3f}, "
        f"{profiler['pairs']} pairs, {profiler['traces_recorded']} traces recorded)"
    )
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
