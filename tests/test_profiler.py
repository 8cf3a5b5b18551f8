"""Gradio's profiler collected per point: each queued call's trace saved once, tagged with the
point it belongs to (a late one too), and joined to its ledger row by Gradio's event id."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

from loadtests.clients import make_client
from loadtests.measure import measure_point
from loadtests.profiler import PROFILING_ENV, ProfilerTraces
from loadtests.scenarios import Phase
from loadtests.serverproc import start_server
from loadtests.session import PlainSession
from reports.schema import PROFILING_FILE
from tests.helpers.points import point_scope
from tests.helpers.servers import small_jpeg


def test_traces_per_point_joined_to_the_ledger_by_event_id(tmp_path: Path) -> None:
    sim_300_ms = ["--model", "sim", "--sim-ms", "300"]
    server = start_server("gradio", sim_300_ms, log_path=tmp_path / "gradio.log", env=PROFILING_ENV)
    try:
        scope = point_scope(server, tmp_path, client="gradio-b64")
        scope.target.profiler = ProfilerTraces(server.url, scope.recorder)
        client = make_client("gradio-b64", small_jpeg())
        session = PlainSession(server.url)
        first = Phase("latency", "users=1", 1, None, target_requests=2)
        second = Phase("throughput", "users=1", 1, None, target_requests=1)

        def call() -> str:
            result = client.call(session, uuid.uuid4().hex, time.time() + 30)
            assert result.ok, result.error
            return result.request_id

        point = measure_point(scope, first, "3 requests", lambda: [os.getpid()])
        ids_first = [call(), call()]
        late = threading.Thread(target=lambda: ids_first.append(call()))
        late.start()
        time.sleep(0.1)  # running: its trace is added when it ends, after the point has ended
        point.finish(time.time(), time.time(), None, "")
        late.join()
        point = measure_point(scope, second, "1 request", lambda: [os.getpid()])
        ids_second = [call()]
        point.finish(time.time(), time.time(), None, "")
    finally:
        server.stop()
    traces = [json.loads(line) for line in (tmp_path / PROFILING_FILE).read_text().splitlines()]
    by_event = {trace["event_id"]: trace for trace in traces}
    assert len(by_event) == len(traces) == 4  # each saved once, the warm-up's cleared away
    ledger = scope.target.ledger_rows
    for request_ids, phase in ((ids_first, first), (ids_second, second)):
        for request_id in request_ids:
            trace = by_event[ledger[request_id]["event_id"]]
            assert (trace["server"], trace["client"], trace["trial"]) == ("gradio", "gradio-b64", 1)
            assert (trace["scenario"], trace["load_point"]) == (phase.scenario, phase.label)
            assert trace["fn_name"] == "segment_b64" and trace["fn_call_ms"] >= 300
