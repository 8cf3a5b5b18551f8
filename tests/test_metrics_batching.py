"""reports.metrics.batching on hand-built tables with known answers: GPU calls are counted per
call (batch-mates once), per load point, and a run that never batched has no batching section."""

from __future__ import annotations

from reports.metrics.batching import batch_points, calls_by_size
from reports.metrics.points import point_metrics
from reports.metrics.summaries import summarise
from tests.helpers.reports_tables import RULES, point_of, steady_rows, table_of


def test_calls_are_counted_once_per_batch_not_per_request() -> None:
    table = table_of(
        [
            *({"batch_id": 1, "batch_size": 3} for _ in range(3)),
            *({"batch_id": 2, "batch_size": 1} for _ in range(1)),
            *({"batch_id": 3, "batch_size": 2} for _ in range(2)),
            *({"batch_id": 4, "batch_size": 3} for _ in range(3)),
            {"batch_id": 4, "batch_size": 3, "server": "gradio"},  # another process: its own call
            {},  # no ledger batch fields: not counted
        ]
    )
    assert calls_by_size(table) == {1: 1, 2: 1, 3: 3}


def _batched(rows: list[dict], size: int) -> list[dict]:
    """Every ``size`` consecutive rows (by send time) made one GPU call."""
    rows = sorted(rows, key=lambda row: row["t_sent"])
    return [{**row, "batch_id": index // size, "batch_size": size} for index, row in enumerate(rows)]


def test_batch_points_give_each_point_its_histogram_mean_batch_and_statistics() -> None:
    rows = _batched(steady_rows(users=4, duration=20.0, service=0.2), 4)
    table = table_of(rows)
    results = point_metrics(table, [point_of(rows, t_end=20.0)], RULES)
    [point] = batch_points(table, summarise(table, results, RULES, 1))
    assert set(point.calls_by_size) == {4}
    assert point.mean_batch == 4.0
    assert point.calls * 4 == point.requests
    assert point.throughput is not None and point.throughput.estimate > 0


def test_a_run_that_never_batched_has_no_batching_points() -> None:
    rows = _batched(steady_rows(users=2, duration=10.0), 1)
    table = table_of(rows)
    results = point_metrics(table, [point_of(rows)], RULES)
    assert batch_points(table, summarise(table, results, RULES, 1)) == []


def test_the_batching_figure_draws_each_points_histogram_and_says_when_there_is_none() -> None:
    from reports import plots

    rows = _batched(steady_rows(users=4, duration=20.0, service=0.2), 4)
    table = table_of(rows)
    points = batch_points(
        table, summarise(table, point_metrics(table, [point_of(rows, t_end=20.0)], RULES), RULES, 1)
    )
    figure = plots.batching(points)
    histogram = figure.axes[0]
    assert [bar.get_height() for bar in histogram.patches] == [1.0]  # every call held 4
    plots.plt.close(figure)
    empty = plots.batching([])
    assert "no server formed a batch" in empty.axes[0].texts[0].get_text()
    plots.plt.close(empty)
