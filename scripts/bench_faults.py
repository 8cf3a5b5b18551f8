"""Benchmark: what faults cost each server (sim backend), measured in one run.

(a) Abandonment (``--sim-ms 200``, concurrency 1): 20 clients send a request and leave 50 ms
    later; GPU seconds spent on their requests, and the latency of a fresh request sent right
    after (it waits behind whatever still runs).
(b) One 300 MB chunked body (no Content-Length) to the base64 route: how far the server's peak
    RSS rose above its RSS before.
(c) Queue full (``--max-queue 1``, concurrency 1): p50 latency of the 503 for a 1080p JPEG
    sent as base64 JSON.
(d) Slow clients: p50 latency of a request with 32 sockets trickling headers and 32 trickling
    a body, over p50 without them.
(e) Gradio RSS after N ``segment_b64`` calls (1080p JPEG in, mask out, 4 clients) with
    ``--state-sessions 64`` and with Gradio's stock 10000.
(f) Gradio temp dir after N ``segment`` (FileData) calls with distinct ~50 KB images: with the
    defaults and with ``--max-temp-mb 5``.

``--baseline DIR`` also runs (a)-(d) and (f) on the servers of another checkout (e.g. the main
branch) for a before/after in the same run. Figures describe the servers on this machine's
CPU, never a GPU.

    python scripts/bench_faults.py [--calls 600] [--filedata-calls 300] [--baseline /work/main]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import numpy as np
from PIL import Image

from loadtests.serverproc import ServerProcess, start_server
from tests.helpers import faults, gradio_http, server_state
from tests.helpers.common import PHOTO

LEAVERS = 20
SLOW_SOCKETS = 32
B64_PATHS = {"fastapi": "/segment_b64", "gradio": "/gradio_api/call/segment_b64"}


def photo_1080p() -> bytes:
    """The test photo scaled to 1920x1080, JPEG quality 90 (~180 KB): decoding it costs what a
    1080p photo costs."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(PHOTO)).resize((1920, 1080), Image.Resampling.BICUBIC).save(
        buffer, format="JPEG", quality=90
    )
    return buffer.getvalue()


def distinct_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class Servers:
    """Starts servers of this checkout or, for ``code`` = a directory, of another one."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.count = 0

    @contextmanager
    def run(
        self, kind: str, *flags: str, code: Path | None = None, temp_dir: Path | None = None
    ) -> Iterator[ServerProcess]:
        # another checkout's servers: its directory on the path, and not this one (``-m``
        # would put the working directory first)
        env = {"PYTHONPATH": str(code), "PYTHONSAFEPATH": "1"} if code else {}
        if temp_dir is not None:
            env["GRADIO_TEMP_DIR"] = str(temp_dir)
        self.count += 1
        server = start_server(
            kind, ["--model", "sim", *flags], log_path=self.log_dir / f"{self.count}-{kind}.log", env=env
        )
        try:
            yield server
        finally:
            server.stop()


def call_b64(kind: str, base: str, b64: str) -> None:
    if kind == "gradio":
        result = gradio_http.call(base, "segment_b64", b64)
        assert result.event == "complete", result.data
    else:
        httpx.post(f"{base}/segment_b64", json={"image": b64}, timeout=120).raise_for_status()


def abandonment(servers: Servers, kind: str, code: Path | None) -> dict[str, float]:
    """(a): GPU seconds spent on the 20 leavers, fresh request latency (the small test photo:
    its decode takes less than the 50 ms the clients wait)."""
    photo = PHOTO
    with servers.run(
        kind, "--sim-ms", "200", *(("--concurrency", "1") if kind != "fastapi-naive" else ()), code=code
    ) as server:
        httpx.post(f"{server.url}/ledger/reset")

        def leave(index: int) -> None:
            request_id = f"gone-{index}"
            if kind == "gradio":
                faults.gradio_call_then_leave(
                    server.url, "segment_b64", base64.b64encode(photo).decode(), 0.05, request_id
                )
            else:
                raw = faults.request_bytes(
                    server.url, "POST", "/segment", photo, Content_Type="image/jpeg", X_Request_ID=request_id
                )
                faults.send_then_leave(server.url, raw, 0.05)

        with ThreadPoolExecutor(LEAVERS) as pool:
            list(pool.map(leave, range(LEAVERS)))
        started = time.perf_counter()
        call_b64(kind, server.url, base64.b64encode(photo).decode())
        fresh_s = time.perf_counter() - started
        rows = server_state.wait_idle(server.url, timeout_s=120)["requests"]
    gone = [row for row in rows if row["request_id"].startswith("gone-")]
    ran = [row for row in gone if row.get("t_gpu_start") is not None]
    return {
        "leavers GPU-stage runs": len(ran),
        "GPU s on leavers": sum(row["t_gpu_end"] - row["t_gpu_start"] for row in ran),
        "fresh request s": fresh_s,
    }


def chunked_body_rss(servers: Servers, kind: str, code: Path | None) -> dict[str, float]:
    """(b): peak RSS rise for one 300 MB chunked body."""
    with servers.run(kind, "--sim-ms", "0", code=code) as server:
        answers: list[faults.Answer] = []
        growth = faults.peak_rss_growth(
            server.health["pid"],
            lambda: answers.append(faults.chunked_post(server.url, B64_PATHS[kind], 300_000_000)),
        )
    return {
        "300 MB body: status": answers[0].status,
        "peak RSS rise MB": growth / 1e6,
        "answer s": answers[0].seconds,
    }


def reject_latency(servers: Servers, kind: str, code: Path | None, rejects: int = 30) -> dict[str, float]:
    """(c): p50 of the 503 while the queue is full."""
    b64 = base64.b64encode(photo_1080p()).decode()
    with servers.run(kind, "--sim-ms", "8000", "--concurrency", "1", "--max-queue", "1", code=code) as server:

        def occupy() -> None:
            with contextlib.suppress(httpx.HTTPError):  # cut off when the server stops
                call_b64(kind, server.url, b64)

        occupiers = [threading.Thread(target=occupy, daemon=True) for _ in range(2)]
        for thread in occupiers:
            thread.start()
            time.sleep(0.5)
        deadline = time.monotonic() + 30
        while server_state.ledger(server.url)["queued"] < 1:
            assert time.monotonic() < deadline, "the queue never filled"
            time.sleep(0.05)
        seconds, statuses = [], []
        with httpx.Client(timeout=60) as client:
            for _ in range(rejects):
                started = time.perf_counter()
                if kind == "gradio":
                    response = client.post(f"{server.url}/gradio_api/call/segment_b64", json={"data": [b64]})
                else:
                    response = client.post(f"{server.url}/segment_b64", json={"image": b64})
                seconds.append(time.perf_counter() - started)
                statuses.append(response.status_code)
    return {"503s": statuses.count(503), "reject p50 ms": statistics.median(seconds) * 1000}


def slow_clients(servers: Servers, kind: str, code: Path | None, calls: int = 10) -> dict[str, float]:
    """(d): p50 latency beside 64 slow sockets, over p50 alone."""
    b64 = base64.b64encode(distinct_png(0)).decode()

    def p50() -> float:
        seconds = []
        for _ in range(calls):
            started = time.perf_counter()
            call_b64(kind, server.url, b64)
            seconds.append(time.perf_counter() - started)
        return statistics.median(seconds)

    with servers.run(kind, "--sim-ms", "20", code=code) as server:
        p50()  # first-call costs
        alone = p50()
        with (
            faults.slow_sockets(server.url, SLOW_SOCKETS, B64_PATHS[kind], body=False),
            faults.slow_sockets(server.url, SLOW_SOCKETS, B64_PATHS[kind], body=True),
        ):
            time.sleep(1.0)
            beside = p50()
    return {"p50 alone ms": alone * 1000, "p50 beside 64 slow ms": beside * 1000, "ratio": beside / alone}


def session_memory(servers: Servers, sessions: str, calls: int) -> dict[str, float]:
    """(e): gradio RSS over ``calls`` calls (1080p JPEG in, mask out, 4 clients), sampled at
    each quarter: a plateau keeps nothing per call over the second half, a leak keeps on."""
    b64 = base64.b64encode(photo_1080p()).decode()
    flags = ("--sim-ms", "0", "--output", "mask", "--concurrency", "2", "--state-sessions", sessions)
    with servers.run("gradio", *flags) as server:
        pid = server.health["pid"]
        for _ in range(4):  # warm: first-call allocations are not growth
            call_b64("gradio", server.url, b64)
        rss = [faults.rss_bytes(pid)]
        with ThreadPoolExecutor(4) as pool:
            for _ in range(4):
                list(pool.map(lambda _: call_b64("gradio", server.url, b64), range(calls // 4)))
                rss.append(faults.rss_bytes(pid))
        held = server_state.ledger(server.url)["held"]
    return {
        "RSS MB at 0/25/50/75/100 %": " / ".join(f"{value / 1e6:.0f}" for value in rss),
        "KB kept per call, 2nd half": (rss[4] - rss[2]) / (calls // 2) / 1e3,
        "sessions held": held["state_sessions"],
    }


def temp_dir_size(
    servers: Servers, calls: int, flags: tuple[str, ...], code: Path | None
) -> dict[str, float]:
    """(f): the temp dir after ``calls`` FileData calls with distinct images."""
    images = [distinct_png(seed) for seed in range(calls)]
    with (
        TemporaryDirectory(prefix="gvf-bench-faults-") as temp,
        servers.run("gradio", "--sim-ms", "0", *flags, code=code, temp_dir=Path(temp)) as server,
    ):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda image: gradio_http.segment_file(server.url, image), images))
        time.sleep(2.5)  # one pruning pass
        files = [path for path in Path(temp).rglob("*") if path.is_file()]
        return {
            "uploaded MB": sum(len(image) for image in images) / 1e6,
            "temp dir MB": sum(path.stat().st_size for path in files) / 1e6,
            "result files left": sum(1 for path in files if "outputs" in path.parts),
        }


def show(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    for label, figures in rows.items():
        cells = ", ".join(
            f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
            for name, value in figures.items()
        )
        print(f"  {label:<34} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600, help="(e) calls per state-sessions setting")
    parser.add_argument("--filedata-calls", type=int, default=300, help="(f) FileData calls per setting")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another checkout's servers, for before/after"
    )
    parser.add_argument("--sections", default="abcdef", help="which of (a)-(f) to run, e.g. ae")
    args = parser.parse_args()
    with TemporaryDirectory(prefix="gvf-bench-faults-logs-") as logs:
        servers = Servers(Path(logs))
        codes: list[tuple[str, Path | None]] = [("", None)]
        if args.baseline is not None:
            codes.append((" (baseline)", args.baseline.resolve()))

        def each(
            measure: Callable[..., dict[str, float]], kinds: tuple[str, ...]
        ) -> dict[str, dict[str, float]]:
            return {
                f"{kind}{suffix}": measure(servers, kind, code) for kind in kinds for suffix, code in codes
            }

        both = ("fastapi", "gradio")
        sections: dict[str, tuple[str, Callable[[], dict[str, dict[str, float]]]]] = {
            "a": (
                "(a) 20 clients leave 50 ms after sending (--sim-ms 200, concurrency 1)",
                lambda: each(abandonment, (*both, "fastapi-naive")),
            ),
            "b": ("(b) one 300 MB chunked body to the base64 route", lambda: each(chunked_body_rss, both)),
            "c": (
                "(c) queue full (--max-queue 1): the 503 for a 1080p JPEG as base64",
                lambda: each(reject_latency, both),
            ),
            "d": ("(d) 32 sockets trickling headers + 32 trickling a body", lambda: each(slow_clients, both)),
            "e": (
                f"(e) gradio RSS over {args.calls} segment_b64 calls (1080p JPEG in, mask out, 4 clients)",
                lambda: {
                    f"--state-sessions {n}": session_memory(servers, n, args.calls) for n in ("64", "10000")
                },
            ),
            "f": (
                f"(f) gradio temp dir after {args.filedata_calls} FileData calls (distinct ~50 KB images)",
                lambda: {
                    label: temp_dir_size(servers, args.filedata_calls, flags, code)
                    for label, flags, code in (
                        ("defaults", (), None),
                        ("--max-temp-mb 5", ("--max-temp-mb", "5"), None),
                        *((("defaults (baseline)", (), args.baseline.resolve()),) if args.baseline else ()),
                    )
                },
            ),
        }
        for key in args.sections:
            title, measure = sections[key]
            show(title, measure())


if __name__ == "__main__":
    main()
