"""reports.plots: figures that must not pass a simulation or an absence off as a GPU measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection

from reports import plots
from reports.analysis import analyse
from reports.load import load_run
from reports.metrics.points import point_metrics
from reports.metrics.rules import VALID
from reports.metrics.summaries import PointSummary
from reports.schema import ScenarioName
from tests.helpers.reports_tables import RULES, closed_loop_run, point_of, steady_rows, sweep_point, table_of


def _burst_points() -> list[PointSummary]:
    """Bursts of 1, 2 and 4 on the naive control, one trial each, with their simulated peaks."""
    return [
        PointSummary(
            "r",
            "fastapi-naive",
            "fastapi",
            ScenarioName.COLLISIONS,
            f"burst={k}",
            k,
            None,
            float(k),
            trials=[
                sweep_point(
                    k,
                    None,
                    server="fastapi-naive",
                    scenario=ScenarioName.COLLISIONS,
                    load_point=f"burst={k}",
                    peak_gpu_bytes=(512 + 256 * k) * 2**20,
                )
            ],
            samples={},
            verdict=VALID,
        )
        for k in (1, 2, 4)
    ]


def test_memory_figure_plots_simulated_memory_as_such() -> None:
    simulated = plots.memory_vs_concurrency(_burst_points(), plots.SIMULATED_DEVICE)
    (ax,) = simulated.axes
    assert ax.get_title().startswith("SIMULATED memory") and "not a GPU measurement" in ax.get_title()
    assert ax.get_ylabel() == "simulated GiB" and len(ax.get_lines()) == 1
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == [(512 + 256 * k) / 1024 for k in (1, 2, 4)]
    plots.plt.close(simulated)


def test_memory_figure_on_cpu_draws_nothing_and_says_why() -> None:
    on_cpu = plots.memory_vs_concurrency(_burst_points(), "cpu")
    (ax,) = on_cpu.axes
    assert not ax.get_lines()
    (message,) = ax.texts
    assert "cpu" in message.get_text()  # names the device that has no GPU memory
    plots.plt.close(on_cpu)


def test_latency_cdf_draws_the_rows_the_table_measures() -> None:
    """Defect 2: fast failures are not latencies; the CDF's median is the table's p50."""
    rows = steady_rows(duration=10.0, scenario=ScenarioName.LATENCY)
    for row in rows[::2]:
        row.update(ok=False, status=503, error="http: queue full", t_done=row["t_sent"] + 0.002)
    table = table_of(rows)
    (m,) = point_metrics(table, [point_of(rows)], RULES)
    figure = plots.latency_cdf(table, [m])
    line = figure.axes[0].get_lines()[0]
    drawn = np.asarray(line.get_xdata(), dtype=float)
    assert m.p50_s is not None
    assert float(np.median(drawn)) == pytest.approx(m.p50_s * 1e3)
    plots.plt.close(figure)


def test_a_one_load_sweep_is_a_point_with_whiskers_and_a_longer_one_a_line(tmp_path: Path) -> None:
    run_dir = closed_loop_run(
        tmp_path, {"fastapi": {2: 0.1}, "gradio": {1: 0.1, 2: 0.12}}, trials=3, drift=(1.0, 1.05, 0.97)
    )
    analysis = analyse(load_run(run_dir))
    figure = plots.throughput_vs_load(analysis.summaries)
    (ax,) = figure.axes
    data = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert data["fastapi/fastapi"].get_linestyle() == "None"  # one load: a marker, no line
    assert data["gradio/gradio-b64"].get_linestyle() == "-"
    whiskers = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(whiskers) >= 2  # every series carries its 95% intervals
    fastapi = analysis.summaries[0].intervals["throughput"]
    segments = np.concatenate([c.get_segments() for c in whiskers])
    spans = [(seg[:, 1].min(), seg[:, 1].max()) for seg in segments]
    assert any(np.isclose(low, fastapi.low) and np.isclose(high, fastapi.high) for low, high in spans)
    plots.plt.close(figure)


def test_the_headline_says_when_no_point_has_the_samples_for_p90(tmp_path: Path) -> None:
    thin = analyse(load_run(closed_loop_run(tmp_path / "thin", {"fastapi": {1: 0.1, 2: 0.1}}, duration=3.0)))
    assert all("p90" not in s.intervals for s in thin.summaries)
    figure = plots.throughput_vs_p90(thin.summaries, thin.knees)
    (ax,) = figure.axes
    assert "p50 shown, and no verdict rests on it" in ax.get_title() and ax.get_ylabel().startswith("p50")
    plots.plt.close(figure)
    full = analyse(load_run(closed_loop_run(tmp_path / "full", {"fastapi": {1: 0.1, 2: 0.1}})))
    figure = plots.throughput_vs_p90(full.summaries, full.knees)
    assert figure.axes[0].get_ylabel().startswith("p90")
    plots.plt.close(figure)
