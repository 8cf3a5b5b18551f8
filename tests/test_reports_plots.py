"""reports.plots: figures that must not pass a simulation or an absence off as a GPU measurement."""

from __future__ import annotations

from reports import plots
from reports.metrics.points import PointMetrics
from reports.schema import ScenarioName
from tests.helpers.reports_tables import sweep_point


def _burst_points() -> list[PointMetrics]:
    return [
        sweep_point(
            k,
            None,
            server="fastapi-naive",
            scenario=ScenarioName.COLLISIONS,
            load_point=f"burst={k}",
            peak_gpu_bytes=(512 + 256 * k) * 2**20,
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
