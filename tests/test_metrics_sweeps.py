"""reports.metrics.sweeps: the knee of a sweep, its single-stream baseline, and the saturation point."""

from __future__ import annotations

import pytest

from reports.metrics.sweeps import knees, saturation_throughput, single_stream_p90
from reports.schema import ScenarioName
from tests.helpers.reports_tables import RULES, sweep_point


def test_knee_is_the_highest_valid_load_within_the_factor() -> None:
    results = [
        sweep_point(1, 0.10, scenario=ScenarioName.LATENCY, load_point="users=1"),
        sweep_point(1, 0.10),
        sweep_point(2, 0.15),
        sweep_point(4, 0.19),
        sweep_point(8, 0.18, valid=False),  # within the factor but INVALID
        sweep_point(16, 0.50),
    ]
    (knee,) = knees(results, RULES)
    assert (knee.server, knee.client, knee.scenario) == ("fastapi", "fastapi", ScenarioName.THROUGHPUT)
    assert knee.load == 4.0 and knee.p90_s == pytest.approx(0.19)
    assert knee.baseline_p90_s == pytest.approx(0.10) and knee.limit_s == pytest.approx(0.20)


def test_single_stream_p90_prefers_the_latency_scenario_then_the_lowest_sweep_load() -> None:
    latency = sweep_point(1, 0.08, scenario=ScenarioName.LATENCY)
    sweep = [sweep_point(4, 0.3), sweep_point(2, 0.12)]
    p90, _source = single_stream_p90([*sweep, latency], "fastapi", "fastapi", ScenarioName.THROUGHPUT)
    assert p90 == pytest.approx(0.08)
    p90, _source = single_stream_p90(sweep, "fastapi", "fastapi", ScenarioName.THROUGHPUT)
    assert p90 == pytest.approx(0.12)
    p90, _source = single_stream_p90([sweep_point(2, None)], "fastapi", "fastapi", ScenarioName.THROUGHPUT)
    assert p90 is None


def test_knee_falls_back_to_the_lowest_sweep_point_and_reports_none() -> None:
    (fallback,) = knees([sweep_point(1, 0.10), sweep_point(2, 0.15)], RULES)
    assert fallback.load == 2.0 and fallback.baseline_p90_s == pytest.approx(0.10)
    (none,) = knees([sweep_point(1, 0.10, valid=False), sweep_point(2, 0.5, valid=False)], RULES)
    assert none.load is None and none.p90_s is None and none.limit_s == pytest.approx(0.20)
    assert none.reason  # why there is none


def test_one_knee_per_run_server_client_and_sweep() -> None:
    results = [
        sweep_point(1, 0.1),
        sweep_point(1, 0.1, server="gradio", client="gradio-file"),
        sweep_point(1, 0.1, scenario=ScenarioName.OPEN_LOOP, rate=2.0, load=2.0),
        sweep_point(1, 0.1, run_id="other"),
        sweep_point(1, 0.1, scenario=ScenarioName.COLLISIONS),  # a probe, not a sweep
    ]
    found = {(k.run_id, k.server, k.scenario) for k in knees(results, RULES)}
    assert found == {
        ("r", "fastapi", ScenarioName.THROUGHPUT),
        ("r", "gradio", ScenarioName.THROUGHPUT),
        ("r", "fastapi", ScenarioName.OPEN_LOOP),
        ("other", "fastapi", ScenarioName.THROUGHPUT),
    }


def test_saturation_is_the_valid_throughput_point_with_most_images_per_second() -> None:
    results = [
        sweep_point(2, 0.1, throughput_rps=10.0),
        sweep_point(4, 0.1, throughput_rps=14.0),
        sweep_point(8, 0.1, throughput_rps=20.0, valid=False),
        sweep_point(1, 0.1, scenario=ScenarioName.OPEN_LOOP, throughput_rps=30.0),
    ]
    best = saturation_throughput(results, "fastapi", "fastapi")
    assert best is not None and best.load_point == "users=4"
    assert saturation_throughput(results, "gradio", "gradio-file") is None
