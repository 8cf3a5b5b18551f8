"""reports.metrics.sweeps: the knee of a sweep against its VALID single-stream p90, on runs of
closed-loop points whose answers are known."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.analysis import analyse
from reports.load import load_run
from reports.metrics.sweeps import Knee
from reports.schema import ScenarioName
from tests.helpers.reports_tables import closed_loop_run


def knees_of(path: Path, sweep: dict[int, float], **run: object) -> list[Knee]:
    run_dir = closed_loop_run(path, {"fastapi": sweep}, **run)  # type: ignore[arg-type]
    return [k for k in analyse(load_run(run_dir)).knees if k.scenario == ScenarioName.THROUGHPUT]


def test_knee_is_the_highest_valid_load_within_the_factor(tmp_path: Path) -> None:
    sweep = {1: 0.1, 2: 0.15, 4: 0.19, 8: 0.18, 16: 0.5}
    cpu = {("fastapi", ScenarioName.THROUGHPUT, 8): 95.0}  # within the factor but INVALID
    (knee,) = knees_of(tmp_path, sweep, single_stream={"fastapi": 0.1}, cpu=cpu)
    assert (knee.server, knee.client) == ("fastapi", "fastapi")
    assert knee.load == 4.0 and knee.p90_s == pytest.approx(0.19)
    assert knee.baseline_p90_s == pytest.approx(0.10) and knee.limit_s == pytest.approx(0.20)
    assert "`latency`" in knee.reason or "latency" in knee.reason


def test_knee_baseline_is_the_sweeps_users_1_point_without_a_latency_point(tmp_path: Path) -> None:
    (knee,) = knees_of(tmp_path, {1: 0.1, 2: 0.15, 4: 0.5})
    assert knee.load == 2.0 and knee.baseline_p90_s == pytest.approx(0.10)
    assert "users=1" in knee.reason


def test_no_knee_without_a_valid_single_stream_point(tmp_path: Path) -> None:
    cpu = {("fastapi", ScenarioName.THROUGHPUT, 1): 95.0}
    (knee,) = knees_of(tmp_path, {1: 0.1, 2: 0.15}, cpu=cpu)
    assert knee.load is None and knee.baseline_p90_s is None and "no VALID single-stream" in knee.reason


def test_no_knee_where_every_point_is_past_the_factor(tmp_path: Path) -> None:
    (knee,) = knees_of(tmp_path, {2: 0.3, 4: 0.5}, single_stream={"fastapi": 0.1})
    assert knee.load is None and knee.limit_s == pytest.approx(0.20) and knee.reason


def test_one_knee_per_run_server_client_and_sweep(tmp_path: Path) -> None:
    run_dir = closed_loop_run(
        tmp_path, {"fastapi": {1: 0.1, 2: 0.1}, "gradio": {1: 0.1}, "fastapi/fastapi-b64": {1: 0.1}}
    )
    found = {(k.server, k.client, k.scenario) for k in analyse(load_run(run_dir)).knees}
    assert found == {
        ("fastapi", "fastapi", ScenarioName.THROUGHPUT),
        ("gradio", "gradio-b64", ScenarioName.THROUGHPUT),
        ("fastapi", "fastapi-b64", ScenarioName.THROUGHPUT),
    }
