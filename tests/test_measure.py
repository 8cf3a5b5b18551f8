"""measure_point against a real server: the ledger reset at the point's start (the rows it
clears kept), the point's rows pulled at its end, its PointRecord written to run.json."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from loadtests.clients import make_client
from loadtests.measure import measure_point
from loadtests.scenarios import Phase
from loadtests.serverproc import get_json
from loadtests.session import PlainSession
from reports.schema import RUN_FILE
from tests.helpers.points import point_scope, progress_text
from tests.helpers.servers import sim_server, small_jpeg


def test_measure_point_frames_a_point(tmp_path: Path) -> None:
    phase = Phase("throughput", "users=2", 2, None, target_requests=3, max_s=5.0)
    with sim_server("fastapi", tmp_path) as server:
        scope = point_scope(server, tmp_path)
        client = make_client("fastapi", small_jpeg())
        session = PlainSession(server.url)
        earlier = client.call(session, uuid.uuid4().hex, time.time() + 10)  # before the point
        point = measure_point(scope, phase, "3 requests", lambda: [os.getpid()])
        assert get_json(server.url + "/ledger")["requests"] == []  # reset at the start
        t_start = time.time()
        during = [client.call(session, uuid.uuid4().hex, time.time() + 10) for _ in range(3)]
        record = point.finish(t_start, time.time(), None, "3 requests done")
    assert earlier.ok and all(r.ok for r in during)
    assert set(scope.target.ledger_rows) == {r.request_id for r in [earlier, *during]}
    assert (record.server, record.client, record.scenario, record.load_point) == (
        "fastapi",
        "fastapi",
        "throughput",
        "users=2",
    )
    assert (record.users, record.rate, record.t_drain_end, record.dropped) == (2, None, None, 0)
    assert record.t_start == t_start < record.t_end and record.note == "3 requests done"
    assert record.load_cpu_percent is not None and record.load_cpu_percent >= 0
    assert json.loads((tmp_path / RUN_FILE).read_text())["points"] == [asdict(record)]
    lines = progress_text(scope).splitlines()
    assert lines[0].endswith("  fastapi / fastapi / throughput users=2: 3 requests")
    assert lines[1].endswith("    done fastapi / fastapi / throughput users=2: 3 requests done")


def test_a_wait_for_idle_that_times_out_is_the_next_points_backlog(tmp_path: Path) -> None:
    phase = Phase("throughput", "users=1", 1, None, target_requests=1, max_s=5.0)
    with sim_server("fastapi", tmp_path, "--sim-ms", "2000") as server:
        scope = point_scope(server, tmp_path)
        client = make_client("fastapi", small_jpeg())
        session = PlainSession(server.url)
        abandoned = threading.Thread(target=client.call, args=(session, uuid.uuid4().hex, time.time() + 10))
        abandoned.start()
        deadline = time.time() + 5
        while scope.target.in_server() == 0 and time.time() < deadline:
            time.sleep(0.01)
        assert scope.target.wait_idle(timeout_s=0.2) == 1  # still busy: the wait gives up
        point = measure_point(scope, phase, "1 request", lambda: [os.getpid()])
        record = point.finish(time.time(), time.time(), None, "done")
        # a point that follows without a wait for idle (a spike's next phase) has none
        chained = measure_point(scope, phase, "1 request", lambda: [os.getpid()]).finish(0, 0, None, "")
        abandoned.join()
        assert scope.target.wait_idle(timeout_s=10) == 0
        after_idle = measure_point(scope, phase, "1 request", lambda: [os.getpid()]).finish(0, 0, None, "")
    assert record.backlog == 1 and "started with 1 requests still in the server" in record.note
    assert chained.backlog == 0 and after_idle.backlog == 0
    assert "(starts with 1 requests still in the server)" in progress_text(scope)
