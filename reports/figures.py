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
# The chart that carries the verdict: the report shows it right under the verdict.
HEADLINE = "throughput_vs_p90"
# Figures shown in their own section of the report (where the run has that scenario), not the grid.
ABANDON_FIGURE = "abandon"
SOAK_FIGURE = "soak"
BATCHING_FIGURE = "batching"


@dataclass(frozen=True)
class Figure:
    """A drawn figure: file stem, caption and PNG bytes."""

    name: str
    caption: str
    png: bytes


def figures_for(analysis: RunAnalysis, prefix: str = "") -> list[Figure]:
    """The figures of one run, the headline first, their file stems prefixed by ``prefix``."""
    table, results, summaries, device = (
        analysis.run.table,
        analysis.results,
        analysis.summaries,
        analysis.device,
    )
    simulated = device == plots.SIMULATED_DEVICE
    memory_caption = (
        "Peak SIMULATED memory vs concurrency (the sim backend's accounting per in-flight call, "
        "not a GPU measurement)"
        if simulated
        else "Peak GPU memory vs concurrency"
    ) + " (✕: the server ran out of memory, 503 in its GPU stage)"
    drawn = [
        (
            HEADLINE,
            "Throughput against p90 per server, one point per load with its 95% intervals "
            "(whiskers); ★ marks the knee, hollow markers INVALID points",
            plots.throughput_vs_p90(summaries, analysis.knees),
        ),
        (
            "latency_vs_load",
            "Latency percentiles vs load (each only where the pooled sample supports it; whiskers: 95% CI)",
            plots.latency_vs_load(summaries),
        ),
        (
            "throughput_vs_load",
            "Throughput in the measured window vs load (whiskers: 95% CI)",
            plots.throughput_vs_load(summaries),
        ),
        (
            "latency_cdf",
            "Latency CDF (the table's sample: successful and timed-out requests)",
            plots.latency_cdf(table, results),
        ),
        (
            "gpu_timeline",
            "GPU intervals in the collision scenario",
            plots.gpu_timeline(table, results, device),
        ),
        (
            "decomposition",
            "Latency decomposition: wait / pre / gpu / post / protocol, means over the successful "
            "requests with a ledger row",
            plots.decomposition_bars(summaries),
        ),
        ("memory", memory_caption, plots.memory_vs_concurrency(summaries, device)),
        ("closed_vs_open", "Closed-loop vs open-loop tail latency", plots.closed_vs_open_tail(summaries)),
    ]
    if analysis.abandon:
        drawn.append(
            (
                ABANDON_FIGURE,
                "Abandon scenario: goodput (images delivered to clients still waiting) and GPU seconds "
                "spent on answers nobody received, per server (whiskers: 95% CI)",
                plots.abandon_bars(analysis.abandon),
            )
        )
    if analysis.run.resources is not None and not analysis.run.resources.empty:
        drawn.append(
            (
                SOAK_FIGURE,
                "Soak: each server process's memory, file descriptors, threads, temp dir, GPU memory and "
                "what it holds (/ledger held), over time",
                plots.soak_resources(analysis.run.resources),
            )
        )
    if analysis.batching:
        drawn.append(
            (
                BATCHING_FIGURE,
                "Batching: GPU calls by batch size per load point (counted per call, from the ledger), and "
                "throughput and p90 against the mean batch size (whiskers: 95% CI)",
                plots.batching(analysis.batching),
            )
        )
    footer, loud = figure_footer(analysis.run), footer_is_loud(analysis.run)
    return [
        Figure(prefix + name, caption, plots.png_bytes(fig, footer, loud)) for name, caption, fig in drawn
    ]


def comparison_figures(analyses: Sequence[RunAnalysis]) -> list[Figure]:
    """Throughput and latency of all runs on shared axes (only for comparable runs)."""
    combined = [s for a in analyses for s in a.summaries]
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
