"""A run's time budget (``--budget-s``, the servers' startups included): whether the next round
of trials fits what is left of it, and the time box of each point in a round that does.

A round predicted not to fit is skipped on every server (the caller lists it in run.json) rather
than run short, or on some servers only: a time box cut below a point's sample target leaves an
invalid point, and a trial one server ran and another did not leaves nothing to compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from loadtests.scenarios import Phase
from reports.schema import ScenarioName

# what one (server, client) run of a unit costs beyond its requests: Locust's start and its
# once-a-second shape tick, the waits for idle, the ledger and profiler calls
UNIT_OVERHEAD_S = 1.0
# a point's time box never goes below this
MIN_TIME_BOX_S = 1.0
# an open-loop point's fixed count may need a few arrivals more than its target: its time box
# leaves room for them
_OPEN_LOOP_MARGIN = 1.25


def point_s(phase: Phase, single_stream_rps: float | None) -> float | None:
    """How long ``phase`` is predicted to take on a server whose single-stream rate is
    ``single_stream_rps`` (None or 0: unknown, so no prediction). A closed-loop point: its target
    requests and the ``users - 1`` still in flight when it is reached, one at a time (a guarded
    server serialises them; one that runs them in parallel finishes sooner); a burst point: its
    target in whole bursts. An open-loop point: its arrivals at the offered rate, or the
    server's own rate when that is slower (the drain), plus the last request's service."""
    if not single_stream_rps:
        return None
    users = phase.users or 1
    if phase.scenario == ScenarioName.COLLISIONS:
        requests = math.ceil(phase.target_requests / users) * users
    else:
        requests = phase.target_requests + (0 if phase.rate else users - 1)
    serial_s = requests / single_stream_rps
    if phase.rate:
        return max(requests / phase.rate, serial_s) + 1.0 / single_stream_rps
    return serial_s


def round_s(runs: Sequence[tuple[Sequence[Phase], float | None]]) -> float | None:
    """A round's predicted seconds: each (server, client) run's points at that pair's
    single-stream rate, plus its overhead; None when any pair's rate is still unknown."""
    total = 0.0
    for phases, single_stream_rps in runs:
        for phase in phases:
            seconds = point_s(phase, single_stream_rps)
            if seconds is None:
                return None
            total += seconds
        total += UNIT_OVERHEAD_S
    return total


def time_box(phase: Phase, left_s: float, single_stream_rps: float | None) -> Phase:
    """``phase`` with its time box cut to the ``left_s`` seconds left of the budget, but never
    below its own predicted duration (a round once started runs on every server) or
    :data:`MIN_TIME_BOX_S`, and never above its own time box."""
    predicted = point_s(phase, single_stream_rps) or 0.0
    if phase.rate:
        predicted *= _OPEN_LOOP_MARGIN
    return replace(phase, max_s=min(phase.max_s, max(left_s, predicted, MIN_TIME_BOX_S)))
