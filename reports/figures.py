"""The report's figure set: which plots a run (or a comparison of runs) gets, their captions,
and each rendered to PNG with the footer that names model, weights and device.

``reports.plots`` draws; this module chooses, captions and labels. The PNGs are written
under ``FIGURES_DIR`` beside the documents and embedded in the HTML report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reports import plots
from reports.analysis import RunAnalysis
from reports.labels import comparison_footer, figure_footer, footer_is_loud

FIGURES_DIR = "figures"


@dataclass(frozen=True)
class Figure:
    """A drawn figure: file stem, caption and PNG bytes."""

    name: str
    caption: str
    png: bytes


def figures_for(analysis: RunAnalysis, prefix: str = "") -> list[Figure]:
    """The figures of one run, their file stems prefixed by ``prefix``."""
    table, results, device = analysis.run.table, analysis.results, analysis.device
    simulated = device == plots.SIMULATED_DEVICE
    memory_caption = (
        "Peak SIMULATED memory vs concurrency (the sim backend's accounting per in-flight call, "
        "not a GPU measurement)"
        if simulated
        else "Peak GPU memory vs concurrency"
    )
    drawn = [
        (
            "latency_vs_load",
            "Latency percentiles vs load (each percentile only where the sample supports it)",
            plots.latency_vs_load(results),
        ),
        (
            "throughput_vs_load",
            "Throughput in the measured window vs load",
            plots.throughput_vs_load(results),
        ),
        (
            "throughput_vs_p90",
            "Throughput against p90 latency; ★ marks the knee",
            plots.throughput_vs_p90(results, analysis.knees),
        ),
        ("latency_cdf", "Latency CDF", plots.latency_cdf(table, results)),
        (
            "gpu_timeline",
            "GPU intervals in the collision scenario",
            plots.gpu_timeline(table, results, device),
        ),
        (
            "decomposition",
            "Latency decomposition: wait / pre / gpu / post / protocol, means over the successful "
            "requests with a ledger row",
            plots.decomposition_bars(results),
        ),
        ("memory", memory_caption, plots.memory_vs_concurrency(results, device)),
        ("closed_vs_open", "Closed-loop vs open-loop tail latency", plots.closed_vs_open_tail(results)),
    ]
    footer, loud = figure_footer(analysis.run), footer_is_loud(analysis.run)
    return [
        Figure(prefix + name, caption, plots.png_bytes(fig, footer, loud)) for name, caption, fig in drawn
    ]


def comparison_figures(analyses: Sequence[RunAnalysis]) -> list[Figure]:
    """Throughput and latency of all runs on shared axes (only for comparable runs)."""
    combined = [m for a in analyses for m in a.results]
    footer = comparison_footer([a.run for a in analyses])
    loud = any(footer_is_loud(a.run) for a in analyses)
    return [
        Figure(
            "compare-throughput_vs_load",
            "All runs: throughput vs load",
            plots.png_bytes(plots.throughput_vs_load(combined), footer, loud),
        ),
        Figure(
            "compare-latency_vs_load",
            "All runs: latency vs load",
            plots.png_bytes(plots.latency_vs_load(combined), footer, loud),
        ),
    ]
