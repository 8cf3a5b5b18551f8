"""reports.analysis.analyse: one run judged by the rules it recorded, its device, knees and verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.analysis import analyse
from reports.load import load_run
from reports.metrics.deploy import Choice, recommend
from reports.metrics.points import PointMetrics, point_metrics
from reports.metrics.rules import INVALID, VALID, ValidityRules
from reports.metrics.sweeps import knees
from reports.schema import RUN_FILE, ScenarioName
from tests.helpers.reports_tables import make_run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("runs") / "20270115-080000-smoke")


def test_analysis_is_the_runs_metrics_knees_and_verdict(run_dir: Path) -> None:
    run = load_run(run_dir)
    analysis = analyse(run)
    assert analysis.run is run and analysis.rules == ValidityRules() and analysis.device == "simulated"
    expected = point_metrics(run.table, run.points, ValidityRules(), run_id=run.run_id, device="simulated")
    assert analysis.results == expected
    assert analysis.knees == knees(expected, ValidityRules())
    assert analysis.recommendation == recommend(expected, "simulated")
    assert {m.run_id for m in analysis.results} == {run.run_id}
    assert analysis.recommendation.choice is Choice.FASTAPI  # the fixture's FastAPI is the faster


def test_analysis_judges_by_the_rules_the_run_recorded(run_dir: Path, tmp_path: Path) -> None:
    def overloaded(results: list[PointMetrics]) -> str:
        (point,) = [
            m
            for m in results
            if (m.server, m.scenario, m.users) == ("fastapi-naive", ScenarioName.THROUGHPUT, 4)
        ]
        return point.verdict

    assert overloaded(analyse(load_run(run_dir)).results) == INVALID  # 95% load CPU, limit 90%
    meta = json.loads((run_dir / RUN_FILE).read_text())
    meta["validity"]["max_load_cpu_percent"] = 99.0
    copy = tmp_path / "relaxed"
    copy.mkdir()
    (copy / "requests.csv").write_bytes((run_dir / "requests.csv").read_bytes())
    (copy / RUN_FILE).write_text(json.dumps(meta))
    relaxed = analyse(load_run(copy))
    assert relaxed.rules.max_load_cpu_percent == 99.0
    assert overloaded(relaxed.results) == VALID
