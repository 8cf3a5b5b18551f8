"""reports.load: a run directory, complete or left behind by a crash, read into a LoadedRun."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from reports.load import load_run
from reports.schema import COLUMNS
from tests.helpers.reports_tables import point_of, steady_rows, table_of


def test_load_tolerates_a_truncated_line_and_a_failed_run(tmp_path: Path) -> None:
    rows = steady_rows(duration=1.0)
    text = table_of(rows).to_csv(index=False)
    (tmp_path / "requests.csv").write_text(text + "r,cut-off,fastapi,fast", encoding="utf-8")
    (tmp_path / "run.json").write_text(
        json.dumps(
            {
                "run_id": "x",
                "outcome": "failed",
                "outcome_detail": "boom",
                "ended": None,
                "points": [asdict(point_of(rows))],
            }
        )
    )
    run = load_run(tmp_path)
    assert run.run_id == "x" and len(run.table) == len(rows)
    assert run.table["t_sent"].dtype == "float64" and str(run.table["gpu_depth"].dtype) == "Int64"
    assert run.table["ok"].dtype == bool and run.table["ok"].all()
    # three things were incomplete: the outcome, the end time, the last line
    assert run.partial and len(run.partial_reasons) == 3
    assert any("boom" in r for r in run.partial_reasons)
    assert len(run.points) == 1


def test_load_without_run_json(tmp_path: Path) -> None:
    (tmp_path / "requests.csv").write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    run = load_run(tmp_path)
    assert run.table.empty and run.meta == {} and run.partial
    assert run.run_id == tmp_path.name and run.model == {}


def test_load_skips_unreadable_points(tmp_path: Path) -> None:
    rows = steady_rows(duration=1.0)
    (tmp_path / "requests.csv").write_text(table_of(rows).to_csv(index=False), encoding="utf-8")
    points = [asdict(point_of(rows)), {"server": "fastapi"}, {**asdict(point_of(rows)), "added_later": 1}]
    meta = {"run_id": "x", "outcome": "complete", "ended": "2027-01-15T08:06:00+00:00", "points": points}
    (tmp_path / "run.json").write_text(json.dumps(meta))
    run = load_run(tmp_path)
    assert not run.partial and len(run.points) == 2


def test_load_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "nope")
