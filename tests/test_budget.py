"""The time budget: each server's share of what is left, and which points fit it."""

from __future__ import annotations

import pytest

from loadtests.budget import MIN_TIME_BOX_S, STARTUP_ALLOWANCE_S, fit_phase, share_end
from loadtests.scenarios import Phase

PHASE = Phase("throughput", "users=2", 2, None, target_requests=30, max_s=60.0)


def test_share_end_splits_what_is_left_less_the_later_startups() -> None:
    # 100 s budget, 10 s gone, 3 servers left: two later startups are set aside
    left = 100.0 - 10.0 - 2 * STARTUP_ALLOWANCE_S
    assert share_end(100.0, t_started=0.0, now=10.0, targets_left=3) == pytest.approx(10.0 + left / 3)
    # the last server gets everything that is left
    assert share_end(100.0, t_started=0.0, now=70.0, targets_left=1) == pytest.approx(100.0)


def test_a_phase_that_fits_keeps_its_requests_and_gets_the_time_left() -> None:
    fitted = fit_phase(PHASE, available_s=20.0, rate=2.0)  # 30 requests in 15 s
    assert fitted is not None and fitted.target_requests == 30 and fitted.max_s == 20.0
    roomy = fit_phase(PHASE, available_s=500.0, rate=2.0)
    assert roomy is not None and roomy.max_s == PHASE.max_s  # never longer than its own time box


def test_a_phase_that_does_not_fit_is_skipped() -> None:
    assert fit_phase(PHASE, available_s=14.0, rate=2.0) is None


def test_an_unknown_rate_always_fits_with_a_floor_on_the_time_box() -> None:
    for rate in (None, 0.0):
        fitted = fit_phase(PHASE, available_s=-5.0, rate=rate)
        assert fitted is not None and fitted.max_s == MIN_TIME_BOX_S
