"""The CPU meter reads what a process burnt over the window, an idle process as idle, the
busiest of several, and nothing for a process that is gone.

A process spinning flat out does not reach a fixed share of a core on this shared 2-core box
(48 % at a load average of 4.5), so the busy case burns a known amount of CPU time instead
and the reading is checked against that amount over the measured window."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from loadtests.cpumeter import CpuMeter

IDLE = "import time; time.sleep(60)"
# burns argv[1] seconds of CPU once told to (a line on stdin), says so, then idles
BURN = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
start = time.process_time()
while time.process_time() - start < float(sys.argv[1]):
    pass
print("burnt", flush=True)
time.sleep(60)
"""
BURN_S = 0.6


@contextmanager
def _child(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _burn(child: subprocess.Popen[str]) -> float:
    """Tell the child to burn; the wall-clock seconds until it has."""
    assert child.stdin is not None and child.stdout is not None
    t_start = time.monotonic()
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "burnt"
    return time.monotonic() - t_start


def test_reads_the_cpu_time_a_process_burnt_over_the_window() -> None:
    with _child(BURN, str(BURN_S)) as burner, _child(IDLE) as idle:
        assert burner.stdout is not None and burner.stdout.readline().strip() == "ready"
        meter = CpuMeter(lambda: [idle.pid, burner.pid])
        meter.start()
        wall_s = _burn(burner)
        busiest = meter.stop()
        idle_meter = CpuMeter(lambda: [idle.pid])
        idle_meter.start()
        time.sleep(0.5)
        idle_share = idle_meter.stop()
    expected = 100.0 * BURN_S / wall_s  # the burner is the busiest of the two
    assert busiest is not None and 0.8 * expected <= busiest <= 1.25 * expected, (busiest, expected)
    assert idle_share is not None and idle_share < 20.0


def test_a_process_that_is_gone_reads_nothing() -> None:
    with _child(IDLE) as gone:
        pass
    meter = CpuMeter(lambda: [gone.pid])
    meter.start()
    assert meter.stop() is None
