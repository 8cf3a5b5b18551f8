"""Scenarios: how many requests a point needs, the phases each scenario turns into, the seeded
open-loop schedule, and that every scenario names a registered driver."""

from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest

from loadtests.drivers import DRIVERS
from loadtests.scenarios import (
    PROFILES,
    ArrivalSchedule,
    CollisionsScenario,
    LatencyScenario,
    McpScenario,
    OpenLoopScenario,
    SpikeScenario,
    ThroughputScenario,
    point_seed,
    poisson_arrivals,
    requests_for,
    sample_floor,
)
from reports.metrics.points import measured_window
from reports.metrics.rules import ValidityRules
from reports.schema import PointRecord, ScenarioName

RULES = ValidityRules()


@pytest.mark.parametrize("percentile", ["p50", "p90", "p99"])
@pytest.mark.parametrize("users", [0, 1, 4, 32])
def test_requests_for_leaves_the_percentile_its_floor_after_warmup(percentile: str, users: int) -> None:
    floor = {"p50": 1, "p90": RULES.min_samples_p90, "p99": RULES.min_samples_p99}[percentile]
    needed = requests_for(RULES, percentile, users)  # type: ignore[arg-type]
    # the warm-up cut takes the longer of a fraction of the point and a few requests per user
    assert math.floor(needed * (1 - RULES.warmup_fraction)) >= floor
    assert needed - RULES.warmup_requests_per_user * max(users, 1) >= floor


@pytest.mark.parametrize("repeat", [1, 2, 3, 5])
@pytest.mark.parametrize("users", [1, 4])
def test_trials_pooled_hold_the_floor_after_each_trials_warmup(repeat: int, users: int) -> None:
    floor = sample_floor(RULES, "p90", repeat)
    assert floor * repeat >= RULES.min_samples_p90 > (floor - 1) * repeat
    needed = requests_for(RULES, "p90", users, repeat)
    assert math.floor(needed * (1 - RULES.warmup_fraction)) >= floor
    assert needed - RULES.warmup_requests_per_user * users >= floor
    assert needed <= requests_for(RULES, "p90", users)


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
    assert [p.index for p in phases] == [0, 1]
    assert all(p.users is None and p.target_requests == requests_for(RULES, "p50", 1) for p in phases)
    assert all(p.min_measured == 1 for p in phases)


def _measured_after_the_reports_cut(schedule: ArrivalSchedule, t_start: float = 1000.0) -> int:
    """The arrivals the reports measure once they cut the point's warm-up (reports.metrics.points)."""
    scheduled = [t_start + offset for offset in schedule.offsets]
    rows = pd.DataFrame({"t_scheduled": scheduled, "t_sent": scheduled})
    t_end = t_start + schedule.window_s
    point = PointRecord("s", "c", "open-loop", "rate", None, 1.0, t_start, t_end, None, None, None)
    w0, w1 = measured_window(rows, point, RULES)
    return sum(w0 <= t <= w1 for t in scheduled)


@pytest.mark.parametrize(("percentile", "repeat"), [("p90", 1), ("p90", 3), ("p50", 1)])
def test_every_open_loop_point_holds_its_floor_after_the_warmup_cut(percentile: str, repeat: int) -> None:
    # a window of target / rate holds a Poisson count of arrivals: 42% of seeds fell short of the
    # p90 floor after the cut; a fixed count sized against the cut never does
    scenario = OpenLoopScenario(percentile=percentile, max_s=10**6)  # type: ignore[arg-type]
    floor = sample_floor(RULES, percentile, repeat)  # type: ignore[arg-type]
    for phase in scenario.phases(RULES, fastest_rate=2.0, repeat=repeat):
        counts = []
        for seed in range(200):
            schedule = scenario.arrivals(phase, RULES, point_seed(seed, phase.index))
            assert schedule.measured == _measured_after_the_reports_cut(schedule) >= floor
            assert schedule.offsets == tuple(sorted(schedule.offsets))
            assert schedule.offsets[-1] < schedule.window_s
            counts.append(len(schedule.offsets))
        # the fewest arrivals that do it: a few more than the target's expectation at most
        assert min(counts) >= floor and statistics.median(counts) <= phase.target_requests + 3


def test_the_time_box_caps_the_arrivals_and_says_how_many_are_measured() -> None:
    scenario = OpenLoopScenario(fractions=(1.0,), percentile="p90", max_s=10.0)
    (phase,) = scenario.phases(RULES, fastest_rate=2.0)
    schedule = scenario.arrivals(phase, RULES, seed=5)
    assert len(schedule.offsets) == 20  # rate x time box
    assert schedule.measured == _measured_after_the_reports_cut(schedule) < phase.min_measured


def test_poisson_arrivals_are_seeded_and_at_rate() -> None:
    first = poisson_arrivals(50.0, 1000, 10**6, seed=3, rules=RULES)
    assert first == poisson_arrivals(50.0, 1000, 10**6, seed=3, rules=RULES)
    assert first != poisson_arrivals(50.0, 1000, 10**6, seed=4, rules=RULES)
    assert first.offsets[0] > 0 and first.measured >= 1000
    assert 45 < len(first.offsets) / first.window_s < 55


def test_poisson_arrivals_scale_with_the_rate() -> None:
    # the open-loop rate is measured, so it differs between runs: with the same seed, the
    # arrivals are the same stream scaled by the rate, and the same count
    at_10 = poisson_arrivals(10.0, 30, 10**6, seed=3003, rules=RULES)
    at_25 = poisson_arrivals(25.0, 30, 10**6, seed=3003, rules=RULES)
    assert len(at_10.offsets) == len(at_25.offsets)
    assert [t * 10.0 for t in at_10.offsets] == pytest.approx([t * 25.0 for t in at_25.offsets])
    assert at_10.window_s * 10.0 == pytest.approx(at_25.window_s * 25.0)


def test_point_seeds_differ_per_point_trial_and_seed() -> None:
    seeds = {point_seed(s, index, trial) for s in (1, 2, 3) for index in range(6) for trial in (1, 2, 5)}
    assert len(seeds) == 54


def test_every_scenario_names_a_registered_driver() -> None:
    for profile in PROFILES.values():
        for scenario in profile.scenarios.values():
            assert scenario.driver in DRIVERS, (profile.name, scenario.name)
    assert {LatencyScenario.driver, ThroughputScenario.driver, SpikeScenario.driver} == {"closed-loop"}
    assert (CollisionsScenario.driver, OpenLoopScenario.driver) == ("bursts", "open-loop")


def test_the_quick_profile_sweeps_three_loads_with_p90_pooled_over_three_trials() -> None:
    quick = PROFILES["quick"]
    assert quick.repeat >= 3 and quick.budget_s == 300.0
    sweep = quick.scenarios["throughput"].phases(RULES, quick.repeat)
    assert len(sweep) >= 3 and sweep[0].users == 1  # the single-stream point is the sweep's users=1
    for phase in sweep:
        measured_per_trial = phase.target_requests - 1 - RULES.warmup_requests_per_user * (phase.users or 1)
        assert measured_per_trial * quick.repeat >= RULES.min_samples_p90
    # the no-lock control only in the collision burst (and not in mcp, when chosen); everything
    # else on every server
    assert quick.scenario_servers == {"throughput": ("gradio", "fastapi"), "mcp": ("gradio", "fastapi")}
    assert set(quick.default_scenarios) == {"throughput", "collisions"}


def test_the_mcp_scenario_pairs_each_servers_rest_base64_client_with_mcp() -> None:
    mcp = McpScenario(saturating_users=4, percentile="p90")
    assert mcp.clients("gradio") == ("gradio-b64", "mcp") and mcp.clients("fastapi") == ("fastapi-b64", "mcp")
    single, saturating = mcp.phases(RULES, repeat=5)
    assert (single.label, single.users, saturating.label, saturating.users) == ("users=1", 1, "users=4", 4)
    for phase in (single, saturating):  # p90 pooled over the 5 trials, after each trial's warm-up cut
        measured = phase.target_requests - 1 - RULES.warmup_requests_per_user * (phase.users or 1)
        assert measured * 5 >= RULES.min_samples_p90 and phase.scenario == ScenarioName.MCP
    # every profile can run it; the full one does by default, on gradio and fastapi (the no-lock
    # control only when --servers names it)
    for profile in PROFILES.values():
        assert isinstance(profile.scenarios[ScenarioName.MCP], McpScenario), profile.name
    assert ScenarioName.MCP in PROFILES["full"].default_scenarios
    assert PROFILES["full"].scenario_servers[ScenarioName.MCP] == ("gradio", "fastapi")
