"""reports.analysis.analyse: one run judged by the rules it recorded, its device, knees and verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reports.analysis import analyse
from reports.load import load_run
from reports.metrics.deploy import Choice, recommend
from reports.metrics.points import PointMetrics, point_metrics
from reports.metrics.rules import INVALID, VALID, ValidityRules
from reports.metrics.summaries import summarise
from reports.metrics.sweeps import knees
from reports.schema import RUN_FILE, ScenarioName
from tests.helpers.reports_tables import (
    closed_loop_run,
    make_run_dir,
    point_of,
    poisson_open_loop,
    write_run,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("runs") / "20270115-080000-smoke", trials=2)


def test_analysis_is_the_runs_metrics_summaries_knees_and_verdict(run_dir: Path) -> None:
    run = load_run(run_dir)
    analysis = analyse(run)
    rules = ValidityRules()
    assert analysis.run is run and analysis.rules == rules and analysis.device == "simulated"
    assert run.ledger is not None and run.repeat == 2
    expected = point_metrics(
        run.table, run.points, rules, run_id=run.run_id, device="simulated", ledger=run.ledger
    )
    assert analysis.results == expected
    assert {m.trial for m in expected} == {1, 2}
    summaries = summarise(run.table, expected, rules, repeat=2)
    assert [s.key for s in analysis.summaries] == [s.key for s in summaries]
    assert all(s.n_trials == 2 for s in analysis.summaries)
    assert analysis.knees == knees(analysis.summaries, rules)
    assert analysis.recommendation == recommend(analysis.summaries, rules, "simulated", "gpu")
    assert {m.run_id for m in analysis.results} == {run.run_id}
    assert analysis.recommendation.choice is Choice.FASTAPI  # the fixture's FastAPI is the faster
    assert analysis.profiler == []  # the run collected no Gradio traces


def test_analysis_judges_by_the_rules_the_run_recorded(run_dir: Path, tmp_path: Path) -> None:
    def overloaded(results: list[PointMetrics]) -> str:
        (verdict,) = {
            m.verdict
            for m in results
            if (m.server, m.scenario, m.users) == ("fastapi-naive", ScenarioName.THROUGHPUT, 4)
        }
        return verdict

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


# --- issue 9: defects pinned on whole run directories ------------------------------------------


def test_client_completions_are_checked_against_the_server_ledger(tmp_path: Path) -> None:
    """Defect 6: rows missing from the table show against the ledger's completions."""
    rows = poisson_open_loop(rate=8.0, duration=30.0)
    ledger = []
    for i, row in enumerate(rows):
        row["request_id"] = f"r{i}"
        ledger.append(
            {
                "server": "fastapi",
                "request_id": f"r{i}",
                "status": 200,
                "t_recv": row["t_sent"] + 0.0005,
                "t_send": row["t_done"] - 0.0005,
            }
        )
    point = point_of(rows, t_end=30.0)

    def verdict_of(kept: list[dict[str, Any]], name: str) -> tuple[str, list[str]]:
        (m,) = analyse(load_run(write_run(tmp_path / name, kept, [point], ledger=ledger))).results
        return m.verdict, m.reasons

    assert verdict_of(rows, "complete") == (VALID, [])
    keep = np.random.default_rng(5).random(len(rows)) >= 0.3
    verdict, reasons = verdict_of([r for r, k in zip(rows, keep, strict=True) if k], "dropped")
    assert verdict == INVALID and any("ledger" in r for r in reasons), reasons


def test_a_point_that_started_with_a_backlog_is_invalid(tmp_path: Path) -> None:
    """Defect 9: a wait for idle that timed out is said in the next point's verdict."""
    run_dir = closed_loop_run(tmp_path / "run", {"fastapi": {1: 0.1, 2: 0.1}})
    meta = json.loads((run_dir / RUN_FILE).read_text())
    meta["points"][1]["backlog"] = 3
    (run_dir / RUN_FILE).write_text(json.dumps(meta))
    first, second = analyse(load_run(run_dir)).results
    assert first.verdict == VALID
    assert second.verdict == INVALID and any("backlog" in r and "3" in r for r in second.reasons)


def test_knee_baseline_comes_only_from_a_valid_single_stream_point(tmp_path: Path) -> None:
    """Defect 9: an INVALID `latency` point is no baseline; the VALID users=1 point is."""
    run_dir = closed_loop_run(
        tmp_path / "run",
        {"fastapi": {1: 0.1, 2: 0.1, 4: 0.1}},
        single_stream={"fastapi": 0.05},
        cpu={("fastapi", ScenarioName.LATENCY, 1): 95.0},
    )
    (knee,) = [k for k in analyse(load_run(run_dir)).knees if k.scenario == ScenarioName.THROUGHPUT]
    assert knee.baseline_p90_s == pytest.approx(0.1)
