"""Benchmark: what each server adds to the in-process pipeline, and how busy it keeps the GPU.

(a) One sequential client: the median client latency minus the median of the same pipeline
    (pre + GPU + post) called in-process with no server — the server's added latency.
(b) Eight concurrent closed-loop clients: GPU-stage utilisation from the server's ledger
    (sum of GPU intervals / wall time of the run).

Both on ``sim --sim-ms 50`` (a simulated GPU: the figures describe the servers, not a GPU)
with a small image, every server in one run so the ratios share the machine's state.
Targets for ``fastapi``: <= 2 ms added, >= 97 % utilisation. Gradio is measured as it is.

    python scripts/bench_servers.py [--requests 60] [--out reports/runs/bench]
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from loadtests.serverproc import start_server
from reports.metrics import mean_in_flight, percentile
from servers.core.backends.sim import SimBackend
from servers.core.imaging import sample_png
from servers.core.segmenter import Segmenter

SIM_MS = 50.0
IMAGE = sample_png(128)
CLIENTS = 8

Call = Callable[[httpx.Client], None]


def fastapi_call(base: str) -> Call:
    def call(client: httpx.Client) -> None:
        response = client.post(f"{base}/segment", content=IMAGE, headers={"Content-Type": "image/png"})
        response.raise_for_status()

    return call


def gradio_b64_call(base: str) -> Call:
    payload = {"data": [base64.b64encode(IMAGE).decode()]}

    def call(client: httpx.Client) -> None:
        event_id = client.post(f"{base}/gradio_api/call/segment_b64", json=payload).json()["event_id"]
        body = client.get(f"{base}/gradio_api/call/segment_b64/{event_id}").text
        if "event: complete" not in body:
            raise RuntimeError(body[-300:])

    return call


def median_ms(seconds: list[float] | np.ndarray) -> float:
    value = percentile(pd.Series(seconds, dtype=float), 0.5, 1)
    assert value is not None
    return value * 1000.0


def in_process_seconds(requests: int) -> list[float]:
    segmenter = Segmenter(SimBackend(SIM_MS))
    segmenter.segment(IMAGE)
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        segmenter.segment(IMAGE)
        timings.append(time.perf_counter() - started)
    return timings


def sequential_seconds(call: Call, requests: int) -> list[float]:
    timings = []
    with httpx.Client(timeout=60) as client:
        for _ in range(5):  # connection set-up and first-call costs stay out
            call(client)
        for _ in range(requests):
            started = time.perf_counter()
            call(client)
            timings.append(time.perf_counter() - started)
    return timings


def concurrent_utilisation(base: str, call: Call, per_client: int) -> float:
    httpx.post(f"{base}/ledger/reset").raise_for_status()
    barrier = threading.Barrier(CLIENTS)
    window: list[float] = []

    def client_loop() -> None:
        with httpx.Client(timeout=120) as client:
            barrier.wait()
            window.append(time.time())
            for _ in range(per_client):
                call(client)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="sequential requests per server")
    parser.add_argument("--per-client", type=int, default=15, help="requests per concurrent client")
    parser.add_argument("--out", type=Path, default=Path("reports/runs/bench"))
    args = parser.parse_args()

    baseline_ms = median_ms(in_process_seconds(args.requests))
    servers = {
        "fastapi": ("fastapi", [], fastapi_call),
        "fastapi (lock scope request)": ("fastapi", ["--lock-scope", "request"], fastapi_call),
        "gradio (segment_b64)": ("gradio", [], gradio_b64_call),
    }
    results: dict[str, dict[str, float]] = {}
    for label, (kind, extra, make_call) in servers.items():
        server = start_server(kind, ["--model", "sim", "--sim-ms", str(SIM_MS), *extra])
        try:
            call = make_call(server.url)
            client_ms = median_ms(sequential_seconds(call, args.requests))
            utilisation = concurrent_utilisation(server.url, call, args.per_client)
        finally:
            server.stop()
        results[label] = {
            "median_client_ms": round(client_ms, 2),
            "added_ms": round(client_ms - baseline_ms, 2),
            "gpu_utilisation_8_clients": round(utilisation, 4),
        }

    report = {
        "benchmark": "bench_servers",
        "when": datetime.now().isoformat(timespec="seconds"),
        "backend": f"sim (simulated GPU, {SIM_MS:g} ms per call) — not a real GPU",
        "image": "128x128 PNG",
        "requests_sequential": args.requests,
        "clients_concurrent": CLIENTS,
        "in_process_median_ms": round(baseline_ms, 2),
        "servers": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-servers-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"in-process pipeline median: {baseline_ms:.2f} ms  ({report['backend']})")
    print(f"{'server':32} {'client median':>14} {'added':>9} {'GPU util (8 clients)':>21}")
    for label, row in results.items():
        print(
            f"{label:32} {row['median_client_ms']:>11.2f} ms {row['added_ms']:>6.2f} ms"
            f" {row['gpu_utilisation_8_clients'] * 100:>20.1f}%"
        )
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
