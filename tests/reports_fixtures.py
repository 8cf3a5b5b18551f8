"""A realistic run directory built from simulated rows, for the report and notebook tests.

``make_run_dir`` stands in for ``gvf run --profile smoke`` until that exists: it writes
``requests.csv`` and ``run.json`` as the load generator would, from a small deterministic
queueing simulation of the three servers (FastAPI with a GPU-only lock, Gradio whose
queue serialises pre + gpu + post, and the unlocked naive control whose GPU calls slow
down when they overlap). ``outcome="failed"`` writes what a crashed run leaves behind.
"""

from __future__ import annotations

import csv
import heapq
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reports.metrics import ValidityRules
from reports.schema import COLUMNS, RUN_FILE, TABLE_FILE, PointRecord, RequestRow, as_record

PRE_S = 0.010
GPU_S = 0.040
POST_S = 0.012
# Transport + framework time before the handler and after it returns, per server kind.
PROTOCOL_S = {"fastapi": (0.002, 0.002), "fastapi-naive": (0.002, 0.002), "gradio": (0.006, 0.008)}
CLIENT = {"fastapi": "fastapi", "fastapi-naive": "fastapi", "gradio": "gradio-file"}
NAIVE_SLOWDOWN = 0.7  # each extra overlapping GPU call stretches an unlocked call by 70%
T0 = 1_800_000_000.0
# The sim backend's memory accounting (servers/core/backends/sim.py): resident "weights"
# plus a share per image in flight; what a run on device "simulated" records as its peak.
SIM_BASE_BYTES = 512 * 1024**2
SIM_PER_IMAGE_BYTES = 256 * 1024**2


@dataclass
class _Server:
    """Lock state of one simulated server process."""

    kind: str
    rng: np.random.Generator
    lock_free_at: float = 0.0
    gpu_intervals: list[tuple[float, float]] | None = None

    def jitter(self, seconds: float) -> float:
        return float(seconds * self.rng.lognormal(0.0, 0.05))

    def serve(self, t_sent: float) -> dict[str, float | int]:
        """Server stamps for a request sent at t_sent (requests arrive in send order)."""
        p_in, p_out = PROTOCOL_S[self.kind]
        t_recv = t_sent + self.jitter(p_in)
        pre, gpu, post = self.jitter(PRE_S), self.jitter(GPU_S), self.jitter(POST_S)
        intervals = self.gpu_intervals if self.gpu_intervals is not None else []
        if self.kind == "gradio":  # the queue holds the whole function
            t_admit = max(t_recv, self.lock_free_at)
            gpu_start = t_admit + pre
        elif self.kind == "fastapi":  # pre outside, only the GPU stage under the lock
            t_admit = max(t_recv + pre, self.lock_free_at)
            gpu_start = t_admit
        else:  # naive: no lock, overlapping calls share the device
            t_admit = t_recv + pre
            gpu_start = t_admit
        depth = 1 + sum(1 for s, e in intervals if s <= gpu_start < e)
        if self.kind == "fastapi-naive":
            gpu *= 1 + NAIVE_SLOWDOWN * (depth - 1)
        gpu_end = gpu_start + gpu
        t_send = gpu_end + post
        self.lock_free_at = t_send if self.kind == "gradio" else gpu_end
        intervals.append((gpu_start, gpu_end))
        self.gpu_intervals = intervals
        return {
            "t_recv": t_recv,
            "t_admit": t_admit,
            "t_gpu_start": gpu_start,
            "t_gpu_end": gpu_end,
            "t_send": t_send,
            "pre_s": pre,
            "post_s": post,
            "gpu_depth": depth,
            "t_done": t_send + self.jitter(p_out),
        }


@dataclass(frozen=True)
class _Point:
    scenario: str
    users: int | None
    rate: float | None
    duration_s: float

    @property
    def label(self) -> str:
        if self.scenario == "collisions":
            return f"burst={self.users}"
        return f"rate={self.rate:.2f}/s" if self.rate is not None else f"users={self.users}"


def _plan(single_stream_rps: float) -> list[_Point]:
    return [
        _Point("latency", 1, None, 7.0),
        _Point("collisions", 4, None, 4.0),
        _Point("throughput", 1, None, 5.0),
        _Point("throughput", 2, None, 5.0),
        _Point("throughput", 4, None, 5.0),
        # Long windows, as the real profiles use, so the p90 floor is met.
        _Point("open-loop", None, round(0.5 * single_stream_rps, 2), 40.0),
        _Point("open-loop", None, round(0.8 * single_stream_rps, 2), 40.0),
    ]


def _closed_loop(server: _Server, point: _Point, t_start: float, base: RequestRow) -> list[RequestRow]:
    rows = []
    t_end = t_start + point.duration_s
    users = point.users or 1
    if point.scenario == "collisions":  # all K users fire together, then wait for the burst
        t = t_start
        while t < t_end:
            burst = [_row(base, t, t, server.serve(t)) for _ in range(users)]  # t_scheduled: the release
            rows.extend(burst)
            t = max(r.t_done for r in burst) + 0.02
        return rows
    ready = [(t_start + 0.001 * u, u) for u in range(users)]
    heapq.heapify(ready)
    while ready:
        t, user = heapq.heappop(ready)
        if t >= t_end:
            continue
        row = _row(base, t, None, server.serve(t))
        rows.append(row)
        heapq.heappush(ready, (row.t_done, user))
    return rows


def _open_loop(
    server: _Server, point: _Point, t_start: float, base: RequestRow, rng: np.random.Generator
) -> list[RequestRow]:
    rows = []
    t = t_start
    rate = point.rate or 1.0
    while t < t_start + point.duration_s:
        lag = float(rng.uniform(0.0002, 0.002))
        rows.append(_row(base, t + lag, t, server.serve(t + lag)))
        t += float(rng.exponential(1.0 / rate))
    return rows


def _row(
    base: RequestRow, t_sent: float, t_scheduled: float | None, stamps: dict[str, float | int]
) -> RequestRow:
    row = RequestRow(**asdict(base))
    row.request_id = f"{base.server}-{base.load_point}-{t_sent:.6f}"
    row.t_sent, row.t_scheduled = t_sent, t_scheduled
    row.send_lag = None if t_scheduled is None else t_sent - t_scheduled
    row.t_done = float(stamps["t_done"])
    row.status, row.server_status, row.ok, row.bytes = 200, 200, True, 123_456
    row.endpoint = "/gradio_api/call/segment" if base.server == "gradio" else "/segment"
    for name in ("t_recv", "t_admit", "t_gpu_start", "t_gpu_end", "t_send", "pre_s", "post_s"):
        setattr(row, name, float(stamps[name]))
    row.gpu_depth = int(stamps["gpu_depth"])
    return row


def make_run_dir(
    path: Path,
    *,
    backend: str = "sim",
    device: str = "simulated",
    weights: str = "none",
    outcome: str = "complete",
    servers: tuple[str, ...] = ("fastapi", "gradio", "fastapi-naive"),
    seed: int = 7,
    overloaded_cpu: bool = True,
) -> Path:
    """Write a run into ``path`` (created) and return it.

    ``overloaded_cpu`` records 95% load-process CPU at fastapi-naive users=4, so the run
    has an INVALID point for the reports to show. ``outcome`` other than "complete" drops
    the run's last point from run.json, leaves ``ended`` empty and cuts the table's last line.
    """
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    run_id = path.name
    single_stream_rps = 1.0 / (sum(PROTOCOL_S["fastapi"]) + PRE_S + GPU_S + POST_S)
    rows: list[RequestRow] = []
    points: list[PointRecord] = []
    clock = T0
    cuda = device.startswith("cuda")
    simulated = device == "simulated"
    for kind in servers:
        server = _Server(kind, np.random.default_rng(rng.integers(1 << 31)))
        for plan in _plan(single_stream_rps):
            base = RequestRow(
                run_id=run_id,
                request_id="",
                server=kind,
                client=CLIENT[kind],
                scenario=plan.scenario,
                load_point=plan.label,
                users=plan.users,
                rate=plan.rate,
                worker="local",
            )
            if plan.rate is None:
                point_rows = _closed_loop(server, plan, clock, base)
            else:
                point_rows = _open_loop(server, plan, clock, base, rng)
            rows.extend(point_rows)
            t_end = clock + plan.duration_s
            last_done = max(r.t_done for r in point_rows)
            max_depth = max(r.gpu_depth or 1 for r in point_rows)
            cpu = (
                95.0
                if overloaded_cpu
                and kind == "fastapi-naive"
                and plan.users == 4
                and plan.scenario == "throughput"
                else 35.0
            )
            points.append(
                PointRecord(
                    server=kind,
                    client=CLIENT[kind],
                    scenario=plan.scenario,
                    load_point=plan.label,
                    users=plan.users,
                    rate=plan.rate,
                    t_start=clock,
                    t_end=t_end,
                    t_drain_end=t_end + 2 * plan.duration_s if plan.rate is not None else None,
                    load_cpu_percent=cpu,
                    peak_gpu_bytes=(
                        int(1.2e9 + 0.6e9 * max_depth)
                        if cuda
                        else SIM_BASE_BYTES + SIM_PER_IMAGE_BYTES * max_depth
                        if simulated
                        else None
                    ),
                )
            )
            clock = max(t_end, last_done) + 1.0
    finished = outcome == "complete"
    if not finished:
        points.pop()
    _write_table(path / TABLE_FILE, rows, truncate_last=not finished)
    meta = {
        "run_id": run_id,
        "profile": "smoke",
        "outcome": outcome,
        "outcome_detail": "" if finished else "server fastapi-naive exited with code -9 during open-loop",
        "started": "2027-01-15T08:00:00+00:00",
        "ended": "2027-01-15T08:06:00+00:00" if finished else None,
        "git_sha": "0123456789abcdef0123456789abcdef01234567",
        "versions": {
            "python": "3.11.7",
            "torch": "2.13.0",
            "gradio": "6.31.0",
            "fastapi": "0.118.0",
            "locust": "2.40.0",
        },
        "host": {"cpu": "Test CPU @ 2.0GHz", "cores": 2, "gpu": "NVIDIA H100 80GB HBM3" if cuda else None},
        "model": {
            "backend": backend,
            "device": device,
            "weights": weights,
            "weights_source": "",
            "dtype": "float16" if cuda else "n/a",
            "detail": "test fixture",
        },
        "servers": {
            kind: {
                "command": ["python", "-m", "servers", kind],
                "flags": {"backend": backend},
                "startup_line": f"{kind} ready",
                "torch_threads": 1,
                "url": "http://127.0.0.1:7860",
                "exit": None,
            }
            for kind in servers
        },
        "load_generator": {"http_session": "httpx", "workers": 1},
        "scenarios": {p.scenario: {"duration_s": p.duration_s} for p in _plan(single_stream_rps)},
        "seed": seed,
        "validity": asdict(ValidityRules()),
        "points": [asdict(p) for p in points],
        "target_url": None,
    }
    (path / RUN_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


def _write_table(path: Path, rows: list[RequestRow], *, truncate_last: bool) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r.t_done):
            writer.writerow({k: "" if v is None else v for k, v in as_record(row).items()})
    if truncate_last:  # a crash mid-append leaves half a line
        text = path.read_text(encoding="utf-8")
        path.write_text(text[: len(text) - 40], encoding="utf-8")
