"""The per-request results table: the one contract `loadtests` writes and `reports` reads.

One row per logical request (an image in, a cutout or an error out), appended to
``requests.csv`` as the request completes so that a crashed run keeps what it had.
Client-side columns come from the load generator; the columns after the ledger marker
are joined from the server's ledger by ``request_id`` (empty where no ledger could be
joined, e.g. ``--target-url`` runs).

``run.json`` beside the table describes the run; its ``points`` list holds one
:class:`PointRecord` per (server, client, scenario, load point, trial): the measured window
and what was sampled over it, which the reports need for throughput and validity.
``ledger.jsonl`` keeps every raw server ledger row (tagged with its ``server``) and
``profiling.jsonl`` Gradio's own profiler traces where the run collected them, and
``resources.csv`` one :class:`ResourceSample` per sample of a soak (what the server process
held: memory, file descriptors, threads, temp files, its ``/ledger`` ``held``), appended as
sampled so that a crash keeps them.

All timestamps are wall-clock ``time.time()`` seconds (both processes run on one
host, so client and server stamps share a clock).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

TABLE_FILE = "requests.csv"
RUN_FILE = "run.json"
TUNE_FILE = "tune.json"  # a gvf tune directory's record (loadtests.tune)
LEDGER_FILE = "ledger.jsonl"
# gradio servers run with GRADIO_PROFILING=1: Gradio's raw trace fields per event, plus the point's
# server, client, scenario, load_point and trial (loadtests.profiler)
PROFILING_FILE = "profiling.jsonl"
RESOURCES_FILE = "resources.csv"
# The error kind of a request whose client gave up at its client timeout and closed the
# connection (``gvf run --client-timeout-s``, the abandon scenario): "abandoned: <message>".
ABANDONED = "abandoned"


# the ledger's endpoint for MCP tool calls is "mcp:<tool>" on both servers (README "MCP")
MCP_ENDPOINT_PREFIX = "mcp:"


class ScenarioName(StrEnum):
    """The table's ``scenario`` values: what the load generator runs and the reports read."""

    LATENCY = "latency"  # one user back to back: the single-stream baseline
    COLLISIONS = "collisions"  # bursts of K requests released together
    THROUGHPUT = "throughput"  # closed-loop step sweep over users
    OPEN_LOOP = "open-loop"  # seeded Poisson arrivals at fractions of the single-stream rate
    SPIKE = "spike"  # base -> peak -> base users
    MCP = "mcp"  # MCP tools/call against REST on each server: single stream and one saturating load
    ABANDON = "abandon"  # open loop above capacity, a share of the clients giving up at a timeout
    SOAK = "soak"  # a fixed rate for a fixed time, the server's resources sampled


@dataclass
class RequestRow:
    # --- identity of the load point -------------------------------------------------
    run_id: str
    request_id: str
    server: str  # server kind: gradio | fastapi | fastapi-naive | target
    client: str  # client name from loadtests.clients registry
    scenario: str  # a ScenarioName
    load_point: str  # human label of the point, e.g. "users=8", "rate=3.20/s", "burst=4"
    users: int | None = None  # closed-loop concurrency (or burst size) of the point
    rate: float | None = None  # open-loop offered rate, requests/s
    trial: int = 1  # 1..N: the rows of one trial of one point form a group (gvf run --repeat N)
    worker: str = ""  # load-process id (Locust worker) that sent it
    # --- client side ------------------------------------------------------------------
    t_scheduled: float | None = None  # open loop: when the schedule said to send
    t_sent: float = 0.0  # first byte of the logical request leaves the client
    t_done: float = 0.0  # last byte of the result received (or the failure noticed)
    status: int = 0  # HTTP status of the logical request (0 = no response)
    ok: bool = False
    error: str = ""  # error kind and message; "" when ok
    bytes: int = 0  # result bytes received
    send_lag: float | None = None  # open loop: t_sent - t_scheduled
    queue_rank: int | None = None  # gradio-queue: first `estimation` rank seen
    queue_eta: float | None = None  # gradio-queue: first `estimation` ETA seen (s)
    # --- joined from the server ledger ---------------------------------------------
    endpoint: str = ""
    server_status: int | None = None
    t_recv: float | None = None
    t_admit: float | None = None
    t_gpu_start: float | None = None
    t_gpu_end: float | None = None
    t_send: float | None = None
    pre_s: float | None = None
    post_s: float | None = None
    gpu_depth: int | None = None  # GPU calls in flight at t_gpu_start (a batch counts once)
    stage: str = ""  # the last stage the server saw the request enter: received ... done
    event_id: str = ""  # Gradio's event id of the queued call (joins its profiler traces); "" for FastAPI
    batch_size: int | None = None  # requests in this request's GPU call (1: unbatched)
    batch_id: int | None = None  # that GPU call in its server process: batch-mates share it and its interval


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRow))
# each column's value type ("int", "float", "bool" or "str"), read off RequestRow's annotations
COLUMN_TYPES: dict[str, str] = {f.name: str(f.type).split("|")[0].strip() for f in fields(RequestRow)}
LEDGER_COLUMNS: tuple[str, ...] = (
    "endpoint",
    "server_status",
    "t_recv",
    "t_admit",
    "t_gpu_start",
    "t_gpu_end",
    "t_send",
    "pre_s",
    "post_s",
    "gpu_depth",
    "stage",
    "event_id",
    "batch_size",
    "batch_id",
)


def as_record(row: RequestRow) -> dict[str, Any]:
    """The row as a plain dict in column order (what the CSV writer takes)."""
    return {name: getattr(row, name) for name in COLUMNS}


@dataclass
class PointRecord:
    """One load point as run: its window and the samples taken over it (``run.json``)."""

    server: str
    client: str
    scenario: str
    load_point: str
    users: int | None
    rate: float | None
    t_start: float  # the point's window opens (first send); warm-up is cut by reports
    t_end: float  # the window closes (open loop: drain follows, up to t_drain_end)
    t_drain_end: float | None  # open loop: requests still open here became timeouts
    load_cpu_percent: float | None  # busiest load process over the window, % of one core (GIL-bound)
    peak_gpu_bytes: int | None  # the server's peak over the point (None on CPU)
    dropped: int = 0  # ledger rows the server had to drop during the point
    note: str = ""
    trial: int = 1  # which of the run's N trials of this point
    # requests still in the server (in flight or queued) when the point started: the previous
    # point's wait for idle timed out
    backlog: int = 0
    # the client timeout: seconds after its scheduled (or, in closed loop, sent) time at which a
    # request gave up, and the share of the point's requests that had it (None: none gave up)
    give_up_s: float | None = None
    give_up_share: float | None = None


@dataclass
class ResourceSample:
    """One sample of a server process during a soak (``resources.csv``), taken by the harness
    that started it; None where a value could not be read (e.g. no CUDA for ``gpu_bytes``)."""

    run_id: str
    server: str
    client: str
    scenario: str
    load_point: str
    trial: int
    t: float  # wall clock, time.time()
    requests: int  # requests the server had finished (its ledger rows, any status) since the point began
    rss_bytes: int | None  # resident memory of the server's process and its children
    fds: int | None  # open file descriptors, same processes
    threads: int | None
    temp_bytes: int | None  # the server's temp dir (Gradio's uploads and results), walked on disk
    temp_files: int | None
    gpu_bytes: int | None  # GPU memory of the server's processes (nvidia-smi --query-compute-apps)
    peak_gpu_bytes: int | None  # the ledger's peak since the previous sample (sim: simulated memory)
    in_flight: int | None  # the ledger's requests in flight at the sample
    held: str = ""  # the ledger's ``held`` (what the server keeps between requests), as JSON


RESOURCE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResourceSample))
RESOURCE_COLUMN_TYPES: dict[str, str] = {
    f.name: str(f.type).split("|")[0].strip() for f in fields(ResourceSample)
}
