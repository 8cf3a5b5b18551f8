"""StepShape: a phase ends at its request target or its time box, the next begins (the
driver told at each boundary), users and spawn rate per phase, None after the last.

Locust patches the interpreter (gevent) when imported, so the shape is ticked in a child
process, as in ``gvf run``."""

from __future__ import annotations

import json
import subprocess
import sys

_TICKS = """
import locust, json, time
from loadtests.locustfile import MAX_SPAWN_RATE, StepShape
from loadtests.scenarios import Phase

phases = [
    Phase("throughput", "users=1", 1, None, target_requests=3, max_s=60.0),
    Phase("throughput", "users=32", 32, None, target_requests=1000, max_s=0.3),
    Phase("open-loop", "no users", None, None, target_requests=0, max_s=0.3),
]
completed = [0, 0, 0]
boundaries = []
shape = StepShape(phases, lambda i: completed[i], boundaries.append)
ticks = []

def tick(note):
    ticks.append([note, shape.tick(), list(boundaries)])

tick("first tick starts phase 0")
tick("below target, in time: phase 0 goes on")
completed[0] = 3
tick("target reached: phase 1 starts")
completed[1] = 10
tick("below target, in time")
time.sleep(0.35)
tick("time box over: phase 2 starts")
tick("no target: runs to its time box")
time.sleep(0.35)
tick("after the last phase")
print(json.dumps({"ticks": ticks, "max_spawn_rate": MAX_SPAWN_RATE}))
"""


def test_step_shape_moves_on_at_target_or_time_box() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _TICKS], capture_output=True, text=True, timeout=60, check=True
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    cap = out["max_spawn_rate"]
    got = [(tick, boundaries) for _note, tick, boundaries in out["ticks"]]
    assert got == [
        ([1, 10.0], [0]),
        ([1, 10.0], [0]),
        ([32, cap], [0, 1]),  # users x 10 per second, capped
        ([32, cap], [0, 1]),
        ([1, 10.0], [0, 1, 2]),  # a phase without users runs one
        ([1, 10.0], [0, 1, 2]),
        (None, [0, 1, 2, None]),  # None: the driver closes the last point
    ]
