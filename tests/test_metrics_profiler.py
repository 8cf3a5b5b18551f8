"""reports.metrics.profiler: the ledger against Gradio's own profiler traces, joined by event id,
on a hand-built table and traces file whose disagreement is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reports.analysis import analyse
from reports.load import load_run
from reports.metrics.points import point_metrics
from reports.metrics.profiler import profiler_checks
from reports.schema import PROFILING_FILE, ScenarioName
from tests.helpers.reports_tables import RULES, make_run_dir, point_of, steady_rows, table_of


def gradio_rows() -> list[dict[str, Any]]:
    rows = steady_rows(duration=10.0, server="gradio", client="gradio-b64", scenario=ScenarioName.LATENCY)
    for i, row in enumerate(rows):
        row["event_id"] = f"event-{i}"
    return rows


def traces_for(rows: list[dict[str, Any]], wait_off_s: float, call_off_s: float) -> pd.DataFrame:
    """Gradio's traces of ``rows``: its queue wait and call, short of the ledger's by the offsets."""
    return pd.DataFrame(
        [
            {
                "event_id": row["event_id"],
                "queue_wait_ms": (row["t_admit"] - row["t_recv"] - wait_off_s) * 1e3,
                "fn_call_ms": (row["t_send"] - row["t_admit"] - call_off_s) * 1e3,
            }
            for row in rows
        ]
    )


def check_of(rows: list[dict[str, Any]], traces: pd.DataFrame | None) -> Any:
    table = table_of(rows)
    results = point_metrics(table, [point_of(rows)], RULES)
    return profiler_checks(table, results, traces, RULES)


def test_a_known_disagreement_is_measured_and_noted() -> None:
    rows = gradio_rows()
    (check,) = check_of(rows, traces_for(rows, wait_off_s=0.003, call_off_s=-0.0005))
    assert check.n_joined == check.n_requests == 90  # every measured request joined its trace
    assert check.wait_difference_s == pytest.approx(0.003, abs=1e-6)
    assert check.call_difference_s == pytest.approx(-0.0005, abs=1e-6)
    assert "the wait" in check.note and "+3.0 ms" in check.note and "function span" not in check.note


def test_agreement_within_the_limit_says_nothing() -> None:
    rows = gradio_rows()
    (check,) = check_of(rows, traces_for(rows, wait_off_s=0.0015, call_off_s=0.0015))
    assert check.note == "" and check.n_joined == 90


def test_requests_without_an_event_id_join_nothing_and_say_so() -> None:
    rows = gradio_rows()
    traces = traces_for(rows, 0.0, 0.0)
    for row in rows:
        row["event_id"] = ""
    (check,) = check_of(rows, traces)
    assert (
        check.n_joined == 0 and check.wait_difference_s is None and "no measured request joined" in check.note
    )


def test_no_traces_no_checks_and_fastapi_points_are_not_checked() -> None:
    rows = gradio_rows()
    assert check_of(rows, None) == []
    fastapi = steady_rows(duration=10.0, scenario=ScenarioName.LATENCY)
    assert check_of(fastapi, traces_for(rows, 0.0, 0.0)) == []


def test_a_run_with_traces_carries_the_checks_and_the_notes(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run", profiling=True)
    analysis = analyse(load_run(run_dir))
    gradio_points = {s.key for s in analysis.summaries if s.server == "gradio"}
    assert {c.key for c in analysis.profiler} == gradio_points
    assert all(c.n_joined == c.n_requests > 0 and c.note == "" for c in analysis.profiler)
    # the same run with Gradio's queue wait 5 ms short of the ledger's everywhere
    traces = pd.read_json(run_dir / PROFILING_FILE, lines=True)
    traces["queue_wait_ms"] -= 5.0
    traces.to_json(run_dir / PROFILING_FILE, orient="records", lines=True)
    noted = analyse(load_run(run_dir))
    for summary in noted.summaries:
        says = any("Gradio's profiler disagrees" in note for note in summary.notes)
        assert says == (summary.server == "gradio"), summary.key


def test_tool_calls_with_one_dropped_by_the_loopback_are_still_read_as_mcp() -> None:
    rows = gradio_rows()
    for row in rows:
        row["endpoint"] = "mcp:remove_background"
    # a measured call (past the warm-up cut) that Gradio's loopback dropped, ledgered as the plain
    # queued call it ran as
    rows[50].update(endpoint="remove_background", ok=False, error="tool error: (no message)")
    (check,) = check_of(rows, traces_for(rows, wait_off_s=0.012, call_off_s=0.0))
    assert "loopback hop" in check.note and "+12.0 ms" in check.note
