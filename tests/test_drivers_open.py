"""The open-loop and burst drivers: the sender keeps its schedule whatever the server does and
never drops a request; through the driver contract, every result reaches the sink with its
phase and scheduled time, and each point is measured once."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtests.clients import CallResult, make_client
from loadtests.clients.base import CallError, Client, ExchangeResult
from loadtests.drivers.open import TIMEOUT_ERROR, ScheduledSender, SendSummary, run_bursts, run_open_loop
from loadtests.scenarios import CollisionsScenario, OpenLoopScenario, point_seed, poisson_arrivals
from loadtests.serverproc import get_json
from loadtests.session import PlainSession, Session
from reports.metrics.rules import ValidityRules
from reports.schema import RUN_FILE
from tests.helpers.points import CollectingSink, driver_input, point_scope
from tests.helpers.servers import sim_server, small_jpeg

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class _SlowPng(BaseHTTPRequestHandler):
    """Answers /segment with a tiny PNG after ``delay_s``; the header X-Hang makes it hang."""

    delay_s = 0.05

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay_s)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowPng)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _drive(url: str, scheduled: list[float], drain_end: float) -> list[tuple[CallResult, float]]:
    results: list[tuple[CallResult, float]] = []
    lock = threading.Lock()

    def sink(result: CallResult, t_scheduled: float) -> None:
        with lock:
            results.append((result, t_scheduled))

    ScheduledSender(make_client("fastapi", small_jpeg()), PlainSession(url), sink).send(scheduled, drain_end)
    return results


def test_sends_are_not_delayed_by_slow_responses(slow_server: ThreadingHTTPServer) -> None:
    # responses take 50 ms, arrivals every 10 ms: a closed loop would fall behind 5x
    url = f"http://127.0.0.1:{slow_server.server_address[1]}"
    t0 = time.time() + 0.1
    scheduled = [t0 + 0.01 * i for i in range(40)]
    results = _drive(url, scheduled, drain_end=t0 + 5)
    assert len(results) == 40 and all(r.ok for r, _ in results)
    lags = [r.t_sent - t for r, t in results]
    assert statistics.median(lags) < 0.02 and max(lags) < 0.2
    assert all(r.t_done - t >= 0.05 for r, t in results)


def test_requests_open_at_drain_end_are_timeouts(slow_server: ThreadingHTTPServer) -> None:
    _SlowPng.delay_s = 1.0
    try:
        url = f"http://127.0.0.1:{slow_server.server_address[1]}"
        t0 = time.time() + 0.05
        drain_end = t0 + 0.3
        results = _drive(url, [t0, t0 + 0.01, t0 + 0.02], drain_end)
    finally:
        _SlowPng.delay_s = 0.05
    assert len(results) == 3
    for result, _ in results:
        assert not result.ok and result.error == TIMEOUT_ERROR and result.t_done == drain_end


class _Hanging(Client):
    """A call that outlives its deadline (a transport ignoring it) until released: only the
    sender can record it."""

    name = "hanging"
    family = "fastapi"
    description = "never returns in time"

    def __init__(self) -> None:
        super().__init__(b"image", "image/jpeg")
        self.release = threading.Event()

    def exchange(self, session: Session, request_id: str, deadline: float) -> ExchangeResult:
        self.release.wait(30)
        raise CallError("released", "after the test")


def test_a_request_stuck_past_the_drain_keeps_its_real_send_time() -> None:
    client = _Hanging()
    results: list[tuple[CallResult, float]] = []
    t_scheduled = time.time() - 0.5  # the sender is half a second late: the lag must show
    drain_end = time.time() + 0.2
    sender = ScheduledSender(client, PlainSession("http://127.0.0.1:9"), lambda r, t: results.append((r, t)))
    try:
        summary = sender.send([t_scheduled], drain_end)
    finally:
        client.release.set()
    time.sleep(0.05)  # the released thread must not record it a second time
    assert summary == SendSummary(sent=1, completed=0, timed_out=1)
    ((result, scheduled),) = results
    assert scheduled == t_scheduled and result.error == TIMEOUT_ERROR and result.t_done == drain_end
    assert result.t_sent - t_scheduled >= 0.45


def test_schedule_kept_at_20_per_second_on_sim(tmp_path: Path) -> None:
    with sim_server("fastapi", tmp_path) as server:
        t0 = time.time() + 0.2
        arrivals = poisson_arrivals(20.0, 100, 10**6, seed=11, rules=ValidityRules())
        scheduled = [t0 + offset for offset in arrivals.offsets]
        results = _drive(server.url, scheduled, drain_end=t0 + 15)
        ledger = {row["request_id"]: row for row in get_json(server.url + "/ledger")["requests"]}
    assert len(results) == len(scheduled) and all(r.ok for r, _ in results)
    by_schedule = sorted(results, key=lambda item: item[1])
    lags = [r.t_sent - t for r, t in by_schedule]
    assert all(lag >= -0.001 for lag in lags)  # never early
    assert sum(lag <= 0.05 for lag in lags) >= 0.9 * len(lags)
    # sends keep the schedule's order wherever arrivals are more than 5 ms apart
    for (earlier, t_a), (later, t_b) in itertools.pairwise(by_schedule):
        if t_b - t_a > 0.005:
            assert earlier.t_sent < later.t_sent
    # the server saw each request after it was sent
    assert all(r.t_sent <= ledger[r.request_id]["t_recv"] <= r.t_done for r, _ in results)


# --- the drivers through their contract, against a real server


def test_open_loop_driver_sends_the_seeded_schedule(tmp_path: Path) -> None:
    scenario = OpenLoopScenario(fractions=(0.5, 1.0), percentile="p50", max_s=1.0, drain_factor=1.0)
    phases = scenario.phases(ValidityRules(), fastest_rate=20.0)
    sink = CollectingSink()
    idle_waits: list[float] = []
    with sim_server("fastapi", tmp_path) as server:
        scope = point_scope(server, tmp_path)
        job = driver_input(
            scope,
            phases,
            sink,
            open_loop=scenario,
            seed=7,
            trial=2,
            wait_idle=lambda: idle_waits.append(time.time()),
        )
        output = run_open_loop(job)
    assert [point.load_point for point in output.points] == [phase.label for phase in phases]
    assert len(idle_waits) == len(phases)  # the server is let go idle after each point
    for phase, point in zip(phases, output.points, strict=True):
        expected = scenario.arrivals(phase, ValidityRules(), point_seed(7, phase.index, 2))
        received = sink.of(phase)
        offsets = sorted((r.t_scheduled or 0.0) - point.t_start for r in received)
        assert offsets == pytest.approx(expected.offsets, abs=1e-6)
        assert all(r.result.ok and r.worker == "local" for r in received)
        assert point.t_end == pytest.approx(point.t_start + expected.window_s)
        assert point.t_drain_end == pytest.approx(point.t_start + 2 * expected.window_s)
        count = len(expected.offsets)
        assert point.note == f"{count} sent, {count} returned, 0 timed out"
    assert len(json.loads((tmp_path / RUN_FILE).read_text())["points"]) == len(phases)


def test_open_loop_driver_honours_the_budget(tmp_path: Path) -> None:
    scenario = OpenLoopScenario(fractions=(0.5, 1.0, 1.5), percentile="p50", max_s=1.0, drain_factor=1.0)
    phases = scenario.phases(ValidityRules(), fastest_rate=20.0)
    sink = CollectingSink()
    with sim_server("fastapi", tmp_path) as server:
        scope = point_scope(server, tmp_path)
        refused = phases[1]
        job = driver_input(
            scope, phases, sink, open_loop=scenario, fit=lambda phase: None if phase == refused else phase
        )
        output = run_open_loop(job)
    assert [point.load_point for point in output.points] == [phases[0].label, phases[2].label]
    assert not sink.of(refused)


def test_burst_driver_releases_bursts_and_skips_what_the_budget_refuses(tmp_path: Path) -> None:
    phases = CollisionsScenario(burst_sizes=(2, 3, 4), requests=6).phases(ValidityRules())
    sink = CollectingSink()
    with sim_server("fastapi", tmp_path) as server:
        scope = point_scope(server, tmp_path)
        job = driver_input(scope, phases, sink, fit=lambda phase: None if phase.users == 3 else phase)
        output = run_bursts(job)
    assert [point.load_point for point in output.points] == ["burst=2", "burst=4"]
    assert not sink.of(phases[1])
    for phase, point in zip([phases[0], phases[2]], output.points, strict=True):
        received = sink.of(phase)
        size = phase.users or 0
        assert len(received) == math.ceil(6 / size) * size and all(r.result.ok for r in received)
        bursts = Counter(r.t_scheduled for r in received)
        assert set(bursts.values()) == {size}  # each burst: `size` requests released at one instant
        assert point.note == f"{len(received)} requests"
        assert all(point.t_start <= (r.t_scheduled or 0.0) <= point.t_end for r in received)
