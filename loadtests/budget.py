"""A run's time budget (``--budget-s``, startups included): each server's share of it, and
whether a load point fits what is left of that share.

A point predicted not to fit is skipped (and listed in run.json by the caller) rather than
run short: a time box cut below the point's sample target would leave an invalid point.
"""

from __future__ import annotations

from dataclasses import replace

from loadtests.scenarios import Phase

# what a server's start (model load, warm-up) is assumed to take when splitting a budget
STARTUP_ALLOWANCE_S = 6.0
# a fitted point's time box never goes below this
MIN_TIME_BOX_S = 1.0


def share_end(budget_s: float, t_started: float, now: float, targets_left: int) -> float:
    """When the next server's slice ends: an equal part of what is left of the budget, less
    the startups of the ``targets_left - 1`` servers (or passes) after it."""
    left = t_started + budget_s - now - STARTUP_ALLOWANCE_S * (targets_left - 1)
    return now + left / targets_left


def fit_phase(phase: Phase, available_s: float, rate: float | None) -> Phase | None:
    """``phase`` with its time box cut to ``available_s``, or None when its target requests
    would take longer than that: open-loop arrivals at their offered rate, other points at
    ``rate`` (the server's single-stream requests/s; None or 0: unknown, always fits)."""
    rate = phase.rate or rate
    if rate and phase.target_requests / rate > available_s:
        return None
    return replace(phase, max_s=max(min(phase.max_s, available_s), MIN_TIME_BOX_S))
