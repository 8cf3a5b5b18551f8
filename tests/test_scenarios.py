"""Scenarios: how many requests a point needs, the phases each scenario turns into, the seeded
open-loop schedule, and that every scenario names a registered driver."""

from __future__ import annotations

import math

import pytest

from loadtests.drivers import DRIVERS
from loadtests.scenarios import (
    PROFILES,
    CollisionsScenario,
    LatencyScenario,
    OpenLoopScenario,
    SpikeScenario,
    ThroughputScenario,
    point_seed,
    poisson_schedule,
    requests_for,
)
from reports.metrics.rules import ValidityRules

RULES = ValidityRules()


@pytest.mark.parametrize("percentile", ["p50", "p90", "p99"])
@pytest.mark.parametrize("users", [0, 1, 4, 32])
def test_requests_for_leaves_the_percentile_its_floor_after_warmup(percentile: str, users: int) -> None:
    floor = {"p50": 1, "p90": RULES.min_samples_p90, "p99": RULES.min_samples_p99}[percentile]
    needed = requests_for(RULES, percentile, users)  # type: ignore[arg-type]
    # the warm-up cut takes the longer of a fraction of the point and a few requests per user
    assert math.floor(needed * (1 - RULES.warmup_fraction)) >= floor
    assert needed - RULES.warmup_requests_per_user * max(users, 1) >= floor


def test_requests_for_grows_with_users_and_percentile() -> None:
    for percentile in ("p50", "p90", "p99"):
        counts = [requests_for(RULES, percentile, users) for users in (1, 2, 8, 64)]  # type: ignore[arg-type]
        assert counts == sorted(counts) and counts[0] < counts[-1]
    for users in (1, 16):
        assert (
            requests_for(RULES, "p50", users)
            < requests_for(RULES, "p90", users)
            < requests_for(RULES, "p99", users)
        )


def test_requests_for_the_profiles_documented_sizes() -> None:
    # the smoke profile's single-stream point ("up to 5 requests"); the quick profile's p90 (73)
    assert requests_for(RULES, "p50", 1) == 5
    assert requests_for(RULES, "p90", 1) == 73


def test_closed_loop_and_burst_phases() -> None:
    (latency,) = LatencyScenario(percentile="p50", max_s=3.0).phases(RULES)
    assert (latency.label, latency.users, latency.rate, latency.max_s) == ("users=1", 1, None, 3.0)
    throughput = ThroughputScenario(users=(1, 4)).phases(RULES)
    assert [(p.label, p.users) for p in throughput] == [("users=1", 1), ("users=4", 4)]
    assert throughput[0].target_requests < throughput[1].target_requests
    fixed = ThroughputScenario(users=(2,), requests=30).phases(RULES)
    assert fixed[0].target_requests == 30
    bursts = CollisionsScenario(burst_sizes=(2, 8), requests=16).phases(RULES)
    assert [(p.label, p.users, p.target_requests) for p in bursts] == [("burst=2", 2, 16), ("burst=8", 8, 16)]
    spike = SpikeScenario(base_users=1, saturating_users=2, factor=4).phases(RULES)
    assert [(p.label, p.users) for p in spike] == [("1:users=1", 1), ("2:users=8", 8), ("3:users=1", 1)]
    assert {p.scenario for p in spike} == {"spike"}


def test_open_loop_phases_are_fractions_of_the_fastest_rate() -> None:
    scenario = OpenLoopScenario(fractions=(0.5, 1.0), percentile="p50", max_s=1.5)
    phases = scenario.phases(RULES, fastest_rate=20.0)
    assert [p.rate for p in phases] == [10.0, 20.0]
    assert [p.label for p in phases] == ["rate=10.00/s", "rate=20.00/s"]
    assert all(p.users is None and p.target_requests == requests_for(RULES, "p50", 1) for p in phases)
    # the window holds the point's requests at its rate, within the time box
    assert scenario.window_s(phases[0]) == pytest.approx(min(phases[0].target_requests / 10.0, 1.5))
    slow = OpenLoopScenario(max_s=2.0).phases(RULES, fastest_rate=1.0)[0]
    assert OpenLoopScenario(max_s=2.0).window_s(slow) == 2.0


def test_poisson_schedule_is_seeded_and_at_rate() -> None:
    first = poisson_schedule(50.0, 20.0, seed=3)
    assert first == poisson_schedule(50.0, 20.0, seed=3) != poisson_schedule(50.0, 20.0, seed=4)
    assert first == sorted(first) and first[0] > 0 and first[-1] < 20.0
    assert 900 < len(first) < 1100


def test_poisson_schedule_scales_with_the_rate() -> None:
    # the open-loop rate is measured, so it differs between runs: with the same seed, the
    # arrivals are the same stream scaled by the rate, and a window sized in requests holds
    # the same arrivals
    at_10 = poisson_schedule(10.0, 2.0, seed=3003)
    at_25 = poisson_schedule(25.0, 0.8, seed=3003)
    assert len(at_10) == len(at_25) > 0
    assert [t * 10.0 for t in at_10] == pytest.approx([t * 25.0 for t in at_25])


def test_point_seeds_differ_per_point_and_per_seed() -> None:
    seeds = {point_seed(seed, index) for seed in (1, 2, 3) for index in range(6)}
    assert len(seeds) == 18


def test_every_scenario_names_a_registered_driver() -> None:
    for profile in PROFILES.values():
        for scenario in profile.scenarios.values():
            assert scenario.driver in DRIVERS, (profile.name, scenario.name)
    assert {LatencyScenario.driver, ThroughputScenario.driver, SpikeScenario.driver} == {"closed-loop"}
    assert (CollisionsScenario.driver, OpenLoopScenario.driver) == ("bursts", "open-loop")
