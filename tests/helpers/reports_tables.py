"""Inputs for the reports tests: small per-request tables with known answers, and a realistic
run directory.

The small builders (``table_of``, ``steady_rows``, ``burst_rows``, ``poisson_open_loop``,
``point_of``, ``sweep_point``) give tables and points whose metrics can be worked out by
hand. ``make_run_dir`` writes ``requests.csv`` and ``run.json`` as the load generator
would, from a small deterministic queueing simulation of the three servers (FastAPI with a
GPU-only lock, Gradio whose queue serialises pre + gpu + post, and the unlocked naive
control whose GPU calls slow down when they overlap): the same run every time, unlike a
real smoke run. ``outcome="failed"`` writes what a crashed run leaves behind.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.load import typed_table
from reports.metrics.points import PointMetrics, point_metrics
from reports.metrics.rules import INVALID, VALID, ValidityRules
from reports.schema import (
    COLUMNS,
    LEDGER_FILE,
    PROFILING_FILE,
    RUN_FILE,
    TABLE_FILE,
    PointRecord,
    RequestRow,
    ScenarioName,
    as_record,
)

RULES = ValidityRules()

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
        if self.scenario == ScenarioName.COLLISIONS:
            return f"burst={self.users}"
        return f"rate={self.rate:.2f}/s" if self.rate is not None else f"users={self.users}"


def _plan(single_stream_rps: float) -> list[_Point]:
    return [
        _Point(ScenarioName.LATENCY, 1, None, 7.0),
        _Point(ScenarioName.COLLISIONS, 4, None, 4.0),
        _Point(ScenarioName.THROUGHPUT, 1, None, 5.0),
        _Point(ScenarioName.THROUGHPUT, 2, None, 5.0),
        _Point(ScenarioName.THROUGHPUT, 4, None, 5.0),
        # Long windows, as the real profiles use, so the p90 floor is met.
        _Point(ScenarioName.OPEN_LOOP, None, round(0.5 * single_stream_rps, 2), 40.0),
        _Point(ScenarioName.OPEN_LOOP, None, round(0.8 * single_stream_rps, 2), 40.0),
    ]


def _closed_loop(server: _Server, point: _Point, t_start: float, base: RequestRow) -> list[RequestRow]:
    rows = []
    t_end = t_start + point.duration_s
    users = point.users or 1
    if point.scenario == ScenarioName.COLLISIONS:  # all K users fire together, then wait for the burst
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
    trials: int = 1,
    profiling: bool = False,
) -> Path:
    """Write a run into ``path`` (created) and return it.

    ``overloaded_cpu`` records 95% load-process CPU at fastapi-naive users=4, so the run
    has an INVALID point for the reports to show. ``outcome`` other than "complete" drops
    the run's last point from run.json, leaves ``ended`` empty and cuts the table's last line.
    ``trials`` measures every point that many times, interleaved (trial 1 of every server,
    then trial 2, ...), as ``gvf run --repeat`` does. The ledger's rows go to ledger.jsonl;
    with ``profiling`` gradio's events get ids and Gradio's profiler traces (profiling.jsonl),
    which agree with the ledger within a millisecond.
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
    processes = {kind: _Server(kind, np.random.default_rng(rng.integers(1 << 31))) for kind in servers}
    for trial, kind in ((t, k) for t in range(1, trials + 1) for k in servers):
        server = processes[kind]
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
                trial=trial,
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
                and plan.scenario == ScenarioName.THROUGHPUT
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
                    trial=trial,
                )
            )
            clock = max(t_end, last_done) + 1.0
    finished = outcome == "complete"
    if not finished:
        points.pop()
    traces = []
    for i, row in enumerate(rows):
        row.request_id = f"{row.server}-{i}"  # the requests of one burst share their send time
        if profiling and row.server == "gradio":
            row.event_id = f"event-{row.request_id}"
            traces.append(
                {
                    "event_id": row.event_id,
                    "fn_name": "segment",
                    "queue_wait_ms": ((row.t_admit or 0) - (row.t_recv or 0)) * 1e3 - 0.3,
                    "fn_call_ms": ((row.t_send or 0) - (row.t_admit or 0)) * 1e3 + 0.4,
                    "server": row.server,
                    "trial": row.trial,
                    "load_point": row.load_point,
                }
            )
    _write_table(path / TABLE_FILE, rows, truncate_last=not finished)
    ledger = [
        {"server": r.server, "request_id": r.request_id, "status": r.server_status}
        | {name: getattr(r, name) for name in ("t_recv", "t_admit", "t_gpu_start", "t_gpu_end", "t_send")}
        for r in rows
    ]
    (path / LEDGER_FILE).write_text("".join(json.dumps(entry) + "\n" for entry in ledger), encoding="utf-8")
    if profiling:
        (path / PROFILING_FILE).write_text(
            "".join(json.dumps(trace) + "\n" for trace in traces), encoding="utf-8"
        )
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
                "lock_scope": "gpu" if kind == "fastapi" else None,
                "url": "http://127.0.0.1:7860",
                "exit": None,
            }
            for kind in servers
        },
        "repeat": trials,
        "trial_order": [f"{t}/{kind}" for t in range(1, trials + 1) for kind in servers],
        "gradio_profiling": {"enabled": profiling, "file": PROFILING_FILE if profiling else None},
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


# --- small tables with known answers ---------------------------------------------------------


def table_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A typed table from partial rows (RequestRow fills the rest), as load.py would give it."""
    defaults = {
        "run_id": "r",
        "request_id": "",
        "server": "fastapi",
        "client": "fastapi",
        "scenario": ScenarioName.THROUGHPUT,
        "load_point": "users=1",
    }
    records = [
        as_record(RequestRow(**{**defaults, "request_id": str(i), **row})) for i, row in enumerate(rows)
    ]
    return typed_table(pd.DataFrame.from_records(records, columns=list(COLUMNS)))


def steady_rows(
    *,
    users: int = 1,
    duration: float = 10.0,
    service: float = 0.1,
    t0: float = 0.0,
    pre: float = 0.01,
    post: float = 0.01,
    protocol: float = 0.004,
    pattern: Sequence[float] | None = None,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Closed loop with ``users`` independent users, each request taking ``service`` seconds
    (pre + gpu + post + protocol; no waiting), until ``t0 + duration``. With a ``pattern``
    each user's requests take its times in turn instead (the GPU stage takes the difference)."""
    times = [service] if pattern is None else list(pattern)
    starts_in_cycle = np.concatenate([[0.0], np.cumsum(times)[:-1]])
    rows = []
    for user in range(users):
        k = 0
        while True:  # by index: summing floats would drift
            offset = (k // len(times)) * sum(times) + starts_in_cycle[k % len(times)]
            if offset >= duration - 1e-9:
                break
            took = times[k % len(times)]
            t = t0 + user * 1e-3 + offset
            recv = t + protocol / 2
            gpu = took - pre - post - protocol
            rows.append(
                {
                    "t_sent": t,
                    "t_done": t + took,
                    "status": 200,
                    "ok": True,
                    "users": users,
                    "t_recv": recv,
                    "t_admit": recv + pre,
                    "t_gpu_start": recv + pre,
                    "t_gpu_end": recv + pre + gpu,
                    "t_send": recv + pre + gpu + post,
                    "pre_s": pre,
                    "post_s": post,
                    "gpu_depth": 1,
                    "load_point": f"users={users}",
                    **fields,
                }
            )
            k += 1
    return rows


def burst_rows(
    makespans: list[float], size: int = 2, gap: float = 0.2, lag: float = 0.0, t0: float = 0.0, **fields: Any
) -> list[dict[str, Any]]:
    """Bursts of ``size`` requests released together from ``t0``, each after the previous one
    drained; every send leaves ``lag`` seconds after its burst's release."""
    rows, release = [], t0
    for span in makespans:
        for k in range(size):
            done = release + span * (k + 1) / size
            rows.append(
                {
                    "t_scheduled": release,
                    "t_sent": release + lag,
                    "send_lag": lag,
                    "t_done": done,
                    "status": 200,
                    "ok": True,
                    "users": size,
                    "scenario": ScenarioName.COLLISIONS,
                    "load_point": f"burst={size}",
                    **fields,
                }
            )
        release += span + gap
    return rows


def poisson_open_loop(
    *,
    rate: float = 8.0,
    duration: float = 30.0,
    seed: int = 0,
    slow_after: float | None = None,
    service_s: float = 0.05,
    exponential_service: bool = False,
) -> list[dict[str, Any]]:
    """Poisson arrivals at ``rate`` for ``duration`` seconds served FIFO by one server, each
    request sent 1 ms after its schedule. The server takes ``service_s`` a request (50 ms: it
    keeps up), drawn from an exponential distribution of that mean when ``exponential_service``;
    after ``slow_after`` it takes 250 ms (4/s: it falls further behind with every arrival)."""
    rng = np.random.default_rng(seed)
    rows, t, free = [], 0.0, 0.0
    while True:
        t += float(rng.exponential(1.0 / rate))
        if t >= duration:
            return rows
        sent = t + 0.001
        service = float(rng.exponential(service_s)) if exponential_service else service_s
        if slow_after is not None and sent >= slow_after:
            service = 0.25
        free = max(sent, free) + service
        rows.append(
            {
                "t_scheduled": t,
                "t_sent": sent,
                "send_lag": 0.001,
                "t_done": free,
                "status": 200,
                "ok": True,
                "scenario": ScenarioName.OPEN_LOOP,
                "rate": rate,
                "load_point": f"rate={rate:g}/s",
            }
        )


def point_of(
    rows: list[dict[str, Any]], *, t_start: float = 0.0, t_end: float = 10.0, **extra: Any
) -> PointRecord:
    """The run.json record of the point ``rows`` belong to (20% load-process CPU, no GPU memory)."""
    first = rows[0]
    values: dict[str, Any] = {
        "server": first.get("server", "fastapi"),
        "client": first.get("client", "fastapi"),
        "scenario": first.get("scenario", ScenarioName.THROUGHPUT),
        "load_point": first.get("load_point", "users=1"),
        "users": first.get("users"),
        "rate": first.get("rate"),
        "t_start": t_start,
        "t_end": t_end,
        "t_drain_end": None,
        "load_cpu_percent": 20.0,
        "peak_gpu_bytes": None,
    }
    values.update(extra)
    return PointRecord(**values)


def metrics_of(rows: list[dict[str, Any]], **point: Any) -> PointMetrics:
    """The metrics of the one point ``rows`` make up (``point``: overrides for its record)."""
    results = point_metrics(table_of(rows), [point_of(rows, **point)], RULES)
    assert len(results) == 1
    return results[0]


def sweep_point(users: int, p90: float, valid: bool = True, **fields: Any) -> PointMetrics:
    """A point's metrics as given (fastapi/fastapi `throughput` at ``users`` unless overridden)."""
    values: dict[str, Any] = dict(
        run_id="r",
        server="fastapi",
        client="fastapi",
        scenario=ScenarioName.THROUGHPUT,
        load_point=f"users={users}",
        users=users,
        rate=None,
        load=float(users),
        verdict=VALID if valid else INVALID,
        p90_s=p90,
    )
    values.update(fields)
    return PointMetrics(**values)


def write_run(
    path: Path,
    rows: list[dict[str, Any]],
    points: list[PointRecord],
    *,
    ledger: list[dict[str, Any]] | None = None,
    **meta: Any,
) -> Path:
    """A complete run directory from partial rows and their points, as the load generator
    leaves it: requests.csv, run.json (``meta`` overrides its keys) and, when given, the
    server ledger's raw rows in ledger.jsonl (each tagged with its ``server``)."""
    path.mkdir(parents=True, exist_ok=True)
    table_of(rows).to_csv(path / TABLE_FILE, index=False)
    record: dict[str, Any] = {
        "run_id": path.name,
        "outcome": "complete",
        "ended": "2027-01-15T08:06:00+00:00",
        "model": {"backend": "sim", "device": "simulated", "weights": "none"},
        "servers": {},
        "validity": asdict(RULES),
        "points": [asdict(p) for p in points],
        **meta,
    }
    (path / RUN_FILE).write_text(json.dumps(record), encoding="utf-8")
    if ledger is not None:
        with (path / LEDGER_FILE).open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(entry) + "\n" for entry in ledger)
    return path


def ledger_of(rows: list[dict[str, Any]], server: str = "fastapi") -> list[dict[str, Any]]:
    """The server ledger's rows for the table rows that carry ledger stamps."""
    return [
        {
            "server": row.get("server", server),
            "request_id": row.get("request_id", str(i)),
            "status": 200 if row.get("ok", False) else row.get("status", 500),
            **{
                name: row[name]
                for name in ("t_recv", "t_admit", "t_gpu_start", "t_gpu_end", "t_send", "pre_s", "post_s")
                if row.get(name) is not None
            },
        }
        for i, row in enumerate(rows)
        if row.get("t_recv") is not None
    ]


CLIENT_OF = {"fastapi": "fastapi", "fastapi-naive": "fastapi", "gradio": "gradio-b64"}


def closed_loop_run(
    path: Path,
    sweep: dict[str, dict[int, float | tuple[float, ...]]],
    *,
    single_stream: dict[str, float] | None = None,
    duration: float = 10.0,
    cpu: dict[tuple[str, str, int], float] | None = None,
    trials: int = 1,
    drift: Sequence[float] | None = None,
    jitter: float = 0.0,
    seed: int = 0,
    **meta: Any,
) -> Path:
    """A run of closed-loop points with known answers: ``sweep`` maps each server (or
    "server/client") to {users: seconds per request} for its `throughput` points (or a tuple
    of times its requests take in turn), ``single_stream`` each to the seconds per request of
    its `latency` point. Every request takes exactly its time (see ``steady_rows``), so a point's throughput
    is users / mean time. ``cpu`` sets the load-process CPU of (server, scenario, users) (20%
    else, in every trial).

    ``trials`` runs every point that many times, interleaved as ``gvf run --repeat`` does
    (trial 1 of each server and point, then trial 2, ...); each trial's times are stretched by
    its ``drift`` (shared by all servers, as a shared box slows everything down) and by a
    lognormal ``jitter`` of its own per server and point (seeded)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    points: list[PointRecord] = []
    t0 = 0.0
    plan: list[tuple[str, str, int, float | tuple[float, ...]]] = [
        (server, ScenarioName.LATENCY, 1, s) for server, s in (single_stream or {}).items()
    ]
    plan += [(server, ScenarioName.THROUGHPUT, u, s) for server, by in sweep.items() for u, s in by.items()]
    for trial in range(1, trials + 1):
        for series, scenario, users, time in plan:
            server, _, client = series.partition("/")
            stretch = (drift[trial - 1] if drift else 1.0) * float(rng.lognormal(0.0, jitter))
            times = tuple(t * stretch for t in (time if isinstance(time, tuple) else (time,)))
            point_rows = steady_rows(
                users=users,
                duration=duration,
                t0=t0,
                pre=min(times) / 10,
                post=min(times) / 10,
                pattern=times,
                server=server,
                client=client or CLIENT_OF[server],
                scenario=scenario,
                trial=trial,
            )
            load_cpu = (cpu or {}).get((server, scenario, users), 20.0)
            points.append(
                point_of(point_rows, t_start=t0, t_end=t0 + duration, load_cpu_percent=load_cpu, trial=trial)
            )
            rows += point_rows
            t0 += duration + 1.0
    return write_run(path, rows, points, repeat=trials, **meta)
