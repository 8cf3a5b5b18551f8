"""Benchmark: what one MCP ``tools/call`` costs against the same image over REST, on each server.

One sequential client per server, calls interleaved (REST base64 endpoint, then the MCP tool in
a session opened beforehand), so each pair shares the machine's state; the median of the paired
differences (MCP − REST) with a 95 % order-statistic interval is the added cost. Opening a session
(``initialize`` + ``notifications/initialized``) is measured on its own. From the ledger, for
both paths: admission delay (t_admit − t_recv: on gradio's MCP path it holds the loopback hop
into its own queue, ``gradio_client`` → ``/queue/join``) and time outside the server span
(client latency − (t_send − t_recv): on gradio's MCP path, the SSE result back to the loopback
client, PIL's re-encode of the PNG and the MCP answer). Also the in-process cost of that
re-encode. On ``sim`` (a simulated GPU): the figures describe the servers, not a GPU.

    python scripts/bench_mcp.py [--pairs 30] [--sessions 10] [--image loadtests/data/scene-256.jpg]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from loadtests.serverproc import ServerProcess, start_server

ROOT = Path(__file__).resolve().parents[1]
MCP_PATHS = {"gradio": "/gradio_api/mcp/", "fastapi": "/mcp"}
TOOL = "remove_background"


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Median and a distribution-free interval for it: order statistics k and n + 1 − k (1-based),
    with k the largest whose binomial tail P(Bin(n, 1/2) < k) stays within (1 − confidence) / 2."""
    ordered = sorted(values)
    n = len(ordered)
    k, tail = 0, 0.0
    while k < n // 2:
        tail += math.comb(n, k) / 2**n
        if tail > (1 - confidence) / 2:
            break
        k += 1
    k = max(k, 1)
    return statistics.median(ordered), ordered[k - 1], ordered[n - k]


async def rest_call(http: httpx.AsyncClient, server: ServerProcess, b64: str, request_id: str) -> None:
    headers = {"X-Request-ID": request_id}
    if server.kind == "fastapi":
        response = await http.post(f"{server.url}/segment_b64", json={"image": b64}, headers=headers)
        response.raise_for_status()
        return
    posted = await http.post(
        f"{server.url}/gradio_api/call/segment_b64", json={"data": [b64]}, headers=headers
    )
    posted.raise_for_status()
    stream = await http.get(f"{server.url}/gradio_api/call/segment_b64/{posted.json()['event_id']}")
    if "event: complete" not in stream.text:
        raise RuntimeError(stream.text[-300:])


async def measure(server: ServerProcess, b64: str, pairs: int, sessions: int) -> dict[str, Any]:
    url = server.url + MCP_PATHS[server.kind]
    setup_ms = []
    for _ in range(sessions):
        started = time.perf_counter()
        async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            setup_ms.append((time.perf_counter() - started) * 1000)
    request_ids: dict[str, str] = {}
    latency_ms: dict[str, dict[str, float]] = {"rest": {}, "mcp": {}}

    def next_id(path: str) -> str:
        request_ids[path] = f"{path}-{uuid.uuid4().hex}"
        return request_ids[path]

    async def stamp_id(request: httpx.Request) -> None:
        request.headers["X-Request-ID"] = request_ids["mcp"]

    async with (
        httpx.AsyncClient(timeout=120) as rest_http,
        httpx.AsyncClient(timeout=120, event_hooks={"request": [stamp_id]}) as mcp_http,
    ):
        next_id("mcp")
        async with (
            streamable_http_client(url, http_client=mcp_http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for index in range(pairs + 2):  # the first two pairs warm both paths and are dropped
                started = time.perf_counter()
                await rest_call(rest_http, server, b64, next_id("rest"))
                rest_ms = (time.perf_counter() - started) * 1000
                mcp_id = next_id("mcp")
                started = time.perf_counter()
                result = await session.call_tool(TOOL, {"image": b64})
                mcp_ms = (time.perf_counter() - started) * 1000
                if result.isError:
                    raise RuntimeError(result.content)
                if index >= 2:
                    latency_ms["rest"][request_ids["rest"]] = rest_ms
                    latency_ms["mcp"][mcp_id] = mcp_ms
    rows = {
        row["request_id"]: row for row in httpx.get(f"{server.url}/ledger", timeout=10).json()["requests"]
    }
    out: dict[str, Any] = {"session_setup_ms": median_interval(setup_ms)}
    for path, latencies in latency_ms.items():
        joined = [rows[request_id] for request_id in latencies]
        out[path] = {
            "latency_ms": median_interval(list(latencies.values())),
            "admission_ms": median_interval([(r["t_admit"] - r["t_recv"]) * 1000 for r in joined]),
            "outside_span_ms": median_interval(
                [latencies[r["request_id"]] - (r["t_send"] - r["t_recv"]) * 1000 for r in joined]
            ),
        }
    out["added_ms"] = median_interval(
        [
            mcp - rest
            for mcp, rest in zip(latency_ms["mcp"].values(), latency_ms["rest"].values(), strict=True)
        ]
    )
    return out


def reencode_ms(server: ServerProcess, b64: str, repeats: int = 5) -> float:
    """What Gradio's MCP layer does to every image result: open the PNG, save it with PIL defaults."""
    answer = httpx.post(f"{server.url}/segment_b64", json={"image": b64}, timeout=120).json()["image"]
    png = base64.b64decode(answer)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        Image.open(io.BytesIO(png)).save(io.BytesIO(), format="PNG")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def fmt(triple: tuple[float, float, float]) -> str:
    return f"{triple[0]:8.1f} [{triple[1]:.1f}, {triple[2]:.1f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--image", type=Path, default=ROOT / "loadtests/data/scene-256.jpg")
    parser.add_argument("--sim-ms", default="20")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    data = args.image.read_bytes()
    b64 = base64.b64encode(data).decode()
    size = Image.open(io.BytesIO(data)).size
    results: dict[str, Any] = {"image": str(args.image), "size": size, "sim_ms": float(args.sim_ms)}
    for kind in MCP_PATHS:
        server = start_server(kind, ["--model", "sim", "--sim-ms", args.sim_ms])
        try:
            results[kind] = anyio.run(measure, server, b64, args.pairs, args.sessions)
            if kind == "fastapi":
                results["pil_reencode_ms"] = reencode_ms(server, b64)
        finally:
            server.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        f"image {args.image.name} {size[0]}x{size[1]}, sim {args.sim_ms} ms, {args.pairs} pairs; "
        "median [95% interval] ms"
    )
    print(f"{'':28}{'gradio':>24}{'fastapi':>24}")
    lines = [
        ("MCP session setup", lambda r: r["session_setup_ms"]),
        ("REST latency", lambda r: r["rest"]["latency_ms"]),
        ("MCP latency", lambda r: r["mcp"]["latency_ms"]),
        ("MCP - REST (paired)", lambda r: r["added_ms"]),
        ("REST t_admit - t_recv", lambda r: r["rest"]["admission_ms"]),
        ("MCP t_admit - t_recv", lambda r: r["mcp"]["admission_ms"]),
        ("REST outside server span", lambda r: r["rest"]["outside_span_ms"]),
        ("MCP outside server span", lambda r: r["mcp"]["outside_span_ms"]),
    ]
    for label, pick in lines:
        print(f"{label:28}{fmt(pick(results['gradio'])):>24}{fmt(pick(results['fastapi'])):>24}")
    print(f"PIL open + save(PNG) of the result, in-process: {results['pil_reencode_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
