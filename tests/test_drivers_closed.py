"""The closed-loop driver through its contract: the phases run back to back in one Locust
shape, each result reaches the sink with the phase whose window holds its send, each point is
measured once, and phases the budget refuses are not run.

Locust patches the interpreter (gevent), so the driver runs in a child process, as in
``gvf run``; the server is a real sim server started there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_CLOSED_LOOP = """
import locust, json, sys, time
from pathlib import Path
from loadtests.drivers.closed import run_closed_loop
from loadtests.scenarios import Phase
from tests.helpers.points import CollectingSink, driver_input, point_scope, progress_text
from tests.helpers.servers import sim_server

run_dir = Path(sys.argv[1])
phases = [
    Phase("spike", "1:users=1", 1, None, target_requests=4, max_s=5.0),
    Phase("spike", "2:users=3", 3, None, target_requests=9, max_s=5.0),
    Phase("spike", "3:users=2", 2, None, target_requests=6, max_s=5.0),
]
sink = CollectingSink()
with sim_server("fastapi", run_dir) as server:
    scope = point_scope(server, run_dir)
    refuse_third = lambda phase: None if phase.label.startswith("3:") else phase
    output = run_closed_loop(driver_input(scope, phases, sink, fit=refuse_third))
    nothing = run_closed_loop(driver_input(scope, phases, sink, fit=lambda phase: None))
    scope.target.pull_ledger(scope.recorder)  # as the run does before it stops the server
    ledger = sorted(scope.target.ledger_rows)
    single = Phase("throughput", "users=1", 1, None, target_requests=10, max_s=30.0)
    alone = CollectingSink()
    started = time.time()
    run_closed_loop(driver_input(scope, [single], alone))
    alone_s = time.time() - started
print(json.dumps({
    "points": [[p.load_point, p.t_start, p.t_end, p.note, p.load_cpu_percent] for p in output.points],
    "nothing": len(nothing.points),
    "received": [[r.phase.label, r.result.t_sent, r.result.ok, r.worker, r.t_scheduled, r.result.request_id]
                 for r in sink.received],
    "ledger": ledger,
    "progress": progress_text(scope),
    "alone": [len(alone.received), alone_s],
}))
"""


def test_closed_loop_attributes_each_result_to_its_phase(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CLOSED_LOOP, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    points = out["points"]
    assert [p[0] for p in points] == ["1:users=1", "2:users=3"] and out["nothing"] == 0
    (_, first_start, first_end, first_note, cpu), (_, second_start, second_end, second_note, _) = points
    assert first_start < first_end == second_start < second_end  # back to back: one boundary
    assert cpu is not None
    received = out["received"]
    assert all(ok and worker == "local" and t_sched is None for _, _, ok, worker, t_sched, _ in received)
    for label, t_sent, *_ in received:
        assert t_sent >= first_start
        assert label == ("1:users=1" if t_sent < second_start else "2:users=3")
    counts = {label: sum(1 for r in received if r[0] == label) for label in ("1:users=1", "2:users=3")}
    assert counts["1:users=1"] >= 4 and counts["2:users=3"] >= 9  # a phase ends at its target, not before
    # the note counts what completed by the boundary; a request sent before it and answered
    # after it still belongs to the earlier phase
    completed_by_boundary = int(first_note.split()[0])
    assert 4 <= completed_by_boundary <= counts["1:users=1"]
    assert first_note.endswith("requests completed (target 4)") and second_note.endswith("(target 9)")
    assert sorted(r[5] for r in received) == out["ledger"]  # every request reached the server's ledger
    assert "skipped" not in out["progress"] and "3:users=2" not in out["progress"]
    # a last phase ends at its target, not at Locust's next once-a-second shape tick: one user on
    # a 20 ms server would otherwise send up to ~50 requests more
    alone_requests, alone_s = out["alone"]
    assert 10 <= alone_requests <= 10 + 6 and alone_s < 5
