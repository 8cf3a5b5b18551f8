"""The time budget: a point's predicted duration, a round's, and each point's time box."""

from __future__ import annotations

import pytest

from loadtests.budget import MIN_TIME_BOX_S, UNIT_OVERHEAD_S, point_s, round_s, time_box
from loadtests.scenarios import Phase

PHASE = Phase("throughput", "users=2", 2, None, target_requests=30, max_s=60.0)
OPEN = Phase("open-loop", "rate=1.00/s", None, rate=1.0, target_requests=20, max_s=60.0)


def test_closed_loop_points_take_their_requests_one_at_a_time() -> None:
    # the target, and the other user's request still in flight when it is reached
    assert point_s(PHASE, 2.0) == pytest.approx(31 / 2.0)
    assert point_s(PHASE, None) is None and point_s(PHASE, 0.0) is None  # unknown rate
    bursts = Phase("collisions", "burst=4", 4, None, target_requests=10)
    assert point_s(bursts, 2.0) == pytest.approx(12 / 2.0)  # whole bursts


def test_open_loop_points_take_their_arrivals_or_the_servers_time_when_slower() -> None:
    assert point_s(OPEN, 4.0) == pytest.approx(20.0 + 0.25)  # the arrivals, then the last service
    assert point_s(OPEN, 0.5) == pytest.approx(40.0 + 2.0)  # overloaded: the server drains them


def test_a_round_is_every_pairs_points_plus_their_overhead() -> None:
    assert round_s([([PHASE], 2.0), ([PHASE], 4.0)]) == pytest.approx(15.5 + 7.75 + 2 * UNIT_OVERHEAD_S)
    assert round_s([([PHASE, PHASE], 2.0)]) == pytest.approx(31.0 + UNIT_OVERHEAD_S)
    assert round_s([([PHASE], 2.0), ([PHASE], None)]) is None  # a rate still unknown: no prediction


def test_time_box_cut_to_what_is_left_never_below_the_prediction() -> None:
    assert time_box(PHASE, left_s=40.0, single_stream_rps=2.0).max_s == 40.0
    assert time_box(PHASE, left_s=500.0, single_stream_rps=2.0).max_s == PHASE.max_s  # never longer
    # the round was admitted on every server: the last one keeps what its point needs
    assert time_box(PHASE, left_s=3.0, single_stream_rps=2.0).max_s == pytest.approx(15.5)
    assert time_box(PHASE, left_s=-5.0, single_stream_rps=None).max_s == MIN_TIME_BOX_S
    # an open-loop point keeps room for the few arrivals its fixed count may add
    assert time_box(OPEN, left_s=1.0, single_stream_rps=4.0).max_s == pytest.approx(20.25 * 1.25)
