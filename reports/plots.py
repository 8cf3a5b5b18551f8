"""Figures of a report, drawn with matplotlib (Agg) from metrics and rows; no metric logic.

Every function returns a ``Figure``. Points are the load points over their trials
(``PointSummary``), each drawn at its estimate with whiskers spanning its 95% interval; a
series (server/client, prefixed by the run where several runs share the axes) is joined by a
line only where it has two loads or more, so a one-point sweep is a point with intervals, never
a line on a degenerate axis. INVALID points are drawn hollow so they stay visible without being
mistaken for evidence. A figure that cannot be drawn says why. ``png_bytes`` renders a figure
with a footer naming the model, its weights and the device (docs/design.md §6), drawn on the
image and kept in the PNG's metadata: the files in ``figures/`` are read on their own.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports.metrics.abandon import AbandonSummary
from reports.metrics.batching import BatchPoint
from reports.metrics.intervals import Interval
from reports.metrics.points import PointMetrics, latency_sample, measured_rows
from reports.metrics.rows import COMPONENTS, gpu_overlaps
from reports.metrics.rules import SWEEP_SCENARIOS
from reports.metrics.summaries import PointSummary
from reports.metrics.sweeps import Knee
from reports.schema import ScenarioName

COMPONENT_COLOURS = {
    "wait": "#c0504d",
    "pre": "#f2a541",
    "gpu": "#4f81bd",
    "post": "#9bbb59",
    "protocol": "#8064a2",
}
X_LABEL = {
    ScenarioName.THROUGHPUT: "concurrent users (closed loop)",
    ScenarioName.OPEN_LOOP: "offered rate, requests/s (open loop)",
}
HOLLOW_NOTE = "hollow markers: INVALID points; whiskers: 95% CI"


def series_label(s: PointSummary | PointMetrics | AbandonSummary, with_run: bool) -> str:
    label = f"{s.server}/{s.client}"
    return f"{s.run_id}: {label}" if with_run else label


def _several_runs(points: Sequence[PointSummary | PointMetrics | AbandonSummary]) -> bool:
    return len({s.run_id for s in points}) > 1


def _series(summaries: Sequence[PointSummary], scenario: str) -> dict[str, list[PointSummary]]:
    with_run = _several_runs(summaries)
    grouped: dict[str, list[PointSummary]] = {}
    for s in sorted((s for s in summaries if s.scenario == scenario), key=lambda s: s.load):
        grouped.setdefault(series_label(s, with_run), []).append(s)
    return grouped


def _sweeps_present(summaries: Sequence[PointSummary]) -> list[str]:
    return [s for s in SWEEP_SCENARIOS if any(m.scenario == s for m in summaries)]


def _legend(ax: Axes) -> None:
    """The series legend, or a note where no point had enough samples to draw anything."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, title=HOLLOW_NOTE, title_fontsize=7)
    else:
        ax.text(
            0.5,
            0.5,
            "no point has enough samples for this statistic",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=9,
            color="dimgray",
        )


def message_figure(title: str, message: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    return fig


# A coordinate of a drawn point: a plain value, or an estimate with its interval.
Value = float | Interval | None


def _centre(value: Value, scale: float) -> float | None:
    if value is None:
        return None
    return (value.estimate if isinstance(value, Interval) else value) * scale


def _whisker(value: Value, scale: float) -> tuple[float, float]:
    if not isinstance(value, Interval):
        return (0.0, 0.0)
    return (max(value.estimate - value.low, 0.0) * scale, max(value.high - value.estimate, 0.0) * scale)


def _plot_points(
    ax: Axes,
    xs: Sequence[Value],
    ys: Sequence[Value],
    valid: Sequence[bool],
    label: str,
    style: str = "-",
    x_scale: float = 1.0,
    y_scale: float = 1.0,
    colour: str | None = None,
) -> str | None:
    """The points that have both coordinates, at their estimates with whiskers over their
    intervals, filled VALID and hollow INVALID, joined by a line only where there are two or
    more; returns the colour used (None where nothing was drawn)."""
    keep = [
        (x, y, v)
        for x, y, v in zip(xs, ys, valid, strict=True)
        if _centre(x, x_scale) is not None and _centre(y, y_scale) is not None
    ]
    if not keep:
        return None
    cx = [_centre(x, x_scale) for x, _, _ in keep]
    cy = [_centre(y, y_scale) for _, y, _ in keep]
    (line,) = ax.plot(
        cx, cy, linestyle=style if len(keep) >= 2 else "none", marker="o", color=colour, label=label, zorder=3
    )
    colour = matplotlib.colors.to_hex(line.get_color())
    xerr = np.array([_whisker(x, x_scale) for x, _, _ in keep]).T
    yerr = np.array([_whisker(y, y_scale) for _, y, _ in keep]).T
    if xerr.any() or yerr.any():
        ax.errorbar(
            cx, cy, xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, elinewidth=1, capsize=3, zorder=2
        )
    hollow = [i for i, (_, _, v) in enumerate(keep) if not v]
    ax.scatter(
        [cx[i] for i in hollow], [cy[i] for i in hollow], facecolors="white", edgecolors=colour, zorder=4
    )
    return colour


def _single_load_note(ax: Axes, summaries: Sequence[PointSummary]) -> None:
    """Say so where every series of a panel has one load: its x axis carries no trend."""
    if summaries and len({s.load for s in summaries}) == 1:
        ax.text(
            0.02,
            0.02,
            f"one load ({summaries[0].load_point}): no trend can be read",
            transform=ax.transAxes,
            fontsize=7,
            color="dimgray",
        )


def latency_vs_load(summaries: Sequence[PointSummary]) -> Figure:
    """p50 / p90 / p99 against load, one panel per sweep, one colour per series."""
    sweeps = _sweeps_present(summaries)
    if not sweeps:
        return message_figure("Latency vs load", "no throughput or open-loop sweep in this run")
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.5 * len(sweeps), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], sweeps, strict=True):
        for label, points in _series(summaries, scenario).items():
            xs, valid = [s.load for s in points], [s.valid for s in points]
            colour = None
            for name, style in (("p50", "-"), ("p90", "--"), ("p99", ":")):
                ys = [s.intervals.get(name) for s in points]
                colour = _plot_points(ax, xs, ys, valid, f"{label} {name}", style, y_scale=1e3, colour=colour)
        ax.set(title=f"Latency vs load — {scenario}", xlabel=X_LABEL[scenario], ylabel="latency, ms")
        _single_load_note(ax, [s for s in summaries if s.scenario == scenario])
        _legend(ax)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def throughput_vs_load(summaries: Sequence[PointSummary]) -> Figure:
    """Completed images/s in the measured window against load (open loop: offered = diagonal)."""
    sweeps = _sweeps_present(summaries)
    if not sweeps:
        return message_figure("Throughput vs load", "no throughput or open-loop sweep in this run")
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.5 * len(sweeps), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], sweeps, strict=True):
        for label, points in _series(summaries, scenario).items():
            _plot_points(
                ax,
                [s.load for s in points],
                [s.intervals.get("throughput") for s in points],
                [s.valid for s in points],
                label,
            )
        if scenario == ScenarioName.OPEN_LOOP:
            top = max((s.load for s in summaries if s.scenario == scenario), default=1.0)
            ax.plot([0, top], [0, top], color="grey", lw=0.8, ls=":", label="offered")
        ax.set(title=f"Throughput vs load — {scenario}", xlabel=X_LABEL[scenario], ylabel="images/s")
        _single_load_note(ax, [s for s in summaries if s.scenario == scenario])
        _legend(ax)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def headline_sweep(summaries: Sequence[PointSummary]) -> str | None:
    """The sweep the headline chart draws: the closed-loop one the verdict compares, else open loop."""
    present = _sweeps_present(summaries)
    return present[0] if present else None


def throughput_vs_p90(summaries: Sequence[PointSummary], knee_list: Sequence[Knee]) -> Figure:
    """The chart that carries the verdict: p90 against throughput per series, one point per load
    (labelled with it) with whiskers over both intervals, the knee starred. Where no point of
    the sweep has the samples for p90, p50 is drawn and the title says so."""
    scenario = headline_sweep(summaries)
    if scenario is None:
        return message_figure("Throughput vs p90", "no throughput or open-loop sweep in this run")
    with_run = _several_runs(summaries)
    # p50 stands in only where no point of the sweep has the samples for p90, and says so
    stat = "p90" if any("p90" in s.intervals for s in summaries if s.scenario == scenario) else "p50"
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for label, points in _series(summaries, scenario).items():
        _plot_points(
            ax,
            [s.intervals.get("throughput") for s in points],
            [s.intervals.get(stat) for s in points],
            [s.valid for s in points],
            label,
            y_scale=1e3,
        )
        for s in points:
            x, y = s.estimate("throughput"), s.estimate(stat)
            if x is not None and y is not None:
                ax.annotate(
                    s.load_point, (x, y * 1e3), textcoords="offset points", xytext=(5, -10), fontsize=7
                )
    for knee in knee_list:
        if knee.scenario != scenario or knee.load is None:
            continue
        at = next(
            s
            for s in summaries
            if (s.run_id, s.server, s.client, s.scenario, s.load)
            == (knee.run_id, knee.server, knee.client, scenario, knee.load)
        )
        x, y = at.estimate("throughput"), at.estimate(stat)
        if x is None or y is None:
            continue
        ax.scatter([x], [y * 1e3], marker="*", s=220, color="gold", edgecolors="black", zorder=4)
        ax.annotate(
            f"knee {series_label(at, with_run)}",
            (x, y * 1e3),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=7,
        )
    title = f"Throughput against {stat} — {scenario} sweep (★ knee)"
    if stat != "p90":
        title += "\nno point has the samples for p90: p50 shown, and no verdict rests on it"
    ax.set(title=title, xlabel="images/s (95% CI)", ylabel=f"{stat} latency, ms (95% CI)")
    _legend(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _first_trials(results: Sequence[PointMetrics]) -> dict[tuple[str, str, str, str], list[PointMetrics]]:
    """The trials of each point, in first-seen order of the points."""
    grouped: dict[tuple[str, str, str, str], list[PointMetrics]] = {}
    for m in results:
        grouped.setdefault(m.key, []).append(m)
    return grouped


def latency_cdf(table: pd.DataFrame, results: Sequence[PointMetrics]) -> Figure:
    """Empirical CDF of the latencies the table's percentiles are taken over (successful and
    timed-out measured requests, every trial pooled): the single-stream point and the highest
    closed-loop load, per series."""
    panels = [
        (ScenarioName.LATENCY, "single stream (`latency`)"),
        (ScenarioName.THROUGHPUT, "highest closed-loop load"),
    ]
    with_run = _several_runs(results)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), squeeze=False)
    for ax, (scenario, title) in zip(axes[0], panels, strict=True):
        tops: dict[str, list[PointMetrics]] = {}
        for trials in _first_trials([m for m in results if m.scenario == scenario]).values():
            label = series_label(trials[0], with_run)
            if label not in tops or trials[0].load > tops[label][0].load:
                tops[label] = trials
        for label, trials in tops.items():
            samples = [latency_sample(measured_rows(table, m)).to_numpy(float) for m in trials]
            values = np.sort(np.concatenate(samples)) * 1e3
            if len(values):
                valid = all(m.valid for m in trials)
                ax.step(
                    values,
                    np.arange(1, len(values) + 1) / len(values),
                    where="post",
                    label=f"{label} {trials[0].load_point} (n={len(values)}{'' if valid else ', INVALID'})",
                )
        ax.set(title=f"Latency CDF — {title}", xlabel="latency, ms", ylabel="fraction of requests ≤ x")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, f"no `{scenario}` rows", ha="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def gpu_timeline(
    table: pd.DataFrame, results: Sequence[PointMetrics], device: str, max_bars: int = 60
) -> Figure:
    """One bar per request's GPU interval in the `collisions` scenario (each point's first
    trial), colliding ones red."""
    points = [
        trials[0]
        for trials in _first_trials(results).values()
        if trials[0].scenario == ScenarioName.COLLISIONS
    ]
    if not points:
        return message_figure("GPU timeline", "no `collisions` scenario in this run")
    cpu = device.startswith("cpu")
    overlaps = gpu_overlaps(table)
    fig, axes = plt.subplots(len(points), 1, figsize=(12, 2.4 * len(points)), squeeze=False)
    for ax, m in zip(axes[:, 0], points, strict=True):
        rows = measured_rows(table, m).dropna(subset=["t_gpu_start", "t_gpu_end"])
        rows = rows.sort_values("t_gpu_start").head(max_bars)
        if rows.empty:
            ax.text(0.5, 0.5, "no ledger GPU stamps", ha="center", transform=ax.transAxes)
        else:
            origin = rows["t_gpu_start"].min()
            collided = overlaps.loc[rows.index, "overlapping"].to_numpy(float) > 0
            for i, (start, end, hit) in enumerate(
                zip(rows["t_gpu_start"], rows["t_gpu_end"], collided, strict=True)
            ):
                ax.broken_barh(
                    [((start - origin) * 1e3, (end - start) * 1e3)],
                    (i, 0.8),
                    color="#c0504d" if hit else "#4f81bd",
                )
        share = "n/a" if m.collision_share is None else f"{m.collision_share:.0%}"
        ax.set(
            title=f"{m.server}/{m.client} {m.load_point} (trial {m.trial}): collision share {share}, "
            f"max depth {m.max_gpu_depth}",
            xlabel="ms since the first GPU start shown",
            ylabel="request",
        )
    what = (
        "CPU: overlap is thread oversubscription, not a GPU effect"
        if cpu
        else "red: overlaps another request's GPU interval"
    )
    fig.suptitle(f"GPU timeline (first {max_bars} measured requests per point) — {what}", fontsize=10)
    fig.tight_layout()
    return fig


def decomposition_bars(summaries: Sequence[PointSummary]) -> Figure:
    """Mean wait / pre / gpu / post / protocol (averaged over the trials), stacked, at the
    single-stream point and the highest closed-loop load of each series."""
    with_run = _several_runs(summaries)
    chosen: list[PointSummary] = []
    for scenario in (ScenarioName.LATENCY, ScenarioName.THROUGHPUT):
        chosen.extend(points[-1] for points in _series(summaries, scenario).values())
    chosen = [s for s in chosen if s.mean_over_trials("gpu_s") is not None]
    if not chosen:
        return message_figure("Latency decomposition", "no ledger rows joined: nothing to decompose")
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(chosen)), 4.5))
    x = np.arange(len(chosen))
    bottom = np.zeros(len(chosen))
    for name in COMPONENTS:
        heights = np.array([(s.mean_over_trials(f"{name}_s") or 0.0) * 1e3 for s in chosen])
        ax.bar(x, heights, bottom=bottom, label=name, color=COMPONENT_COLOURS[name])
        bottom += heights
    labels = [
        f"{series_label(s, with_run)}\n{s.scenario} {s.load_point}{'' if s.valid else ' (INVALID)'}"
        for s in chosen
    ]
    ax.set_xticks(x, labels, fontsize=7, rotation=20, ha="right")
    ax.set(
        title="Where the time goes: means over successful requests with a ledger row, averaged over "
        "trials\n(bar height = those requests' mean latency)",
        ylabel="ms",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


SIMULATED_DEVICE = "simulated"


def _peak_memory(s: PointSummary) -> int | None:
    peaks = [m.peak_gpu_bytes for m in s.trials if m.peak_gpu_bytes is not None]
    return max(peaks) if peaks else None


def memory_vs_concurrency(summaries: Sequence[PointSummary], device: str) -> Figure:
    """Peak memory per point (the highest over its trials) against concurrency: GPU memory
    with CUDA; with the sim backend (device "simulated") the memory it accounts per in-flight
    call, titled as simulated; nothing on CPU."""
    simulated = device == SIMULATED_DEVICE
    what = "simulated memory" if simulated else "GPU memory"
    with_memory = [s for s in summaries if _peak_memory(s) is not None and s.users is not None]
    if not (device.startswith("cuda") or simulated) or not with_memory:
        why = (
            f"device is {device or 'unknown'}: peak GPU memory exists only with CUDA (or as the sim "
            "backend's simulated memory), so this plot is absent"
            if not (device.startswith("cuda") or simulated)
            else f"no point recorded peak {what}"
        )
        return message_figure("Peak memory vs concurrency", why)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    with_run = _several_runs(summaries)
    grouped: dict[str, list[PointSummary]] = {}
    for s in sorted(with_memory, key=lambda s: s.users or 0):
        if s.scenario in (ScenarioName.THROUGHPUT, ScenarioName.COLLISIONS):
            grouped.setdefault(f"{series_label(s, with_run)} {s.scenario}", []).append(s)
    for label, points in grouped.items():
        _plot_points(
            ax,
            [float(s.users or 0) for s in points],
            [(_peak_memory(s) or 0) / 2**30 for s in points],
            [s.valid for s in points],
            label,
        )
    _mark_out_of_memory(ax, [s for points in grouped.values() for s in points])
    title = (
        "SIMULATED memory (sim backend, per in-flight call) vs concurrency — not a GPU measurement"
        if simulated
        else "Peak GPU memory vs concurrency"
    )
    ax.set(
        title=title,
        xlabel="concurrent users / burst size",
        ylabel="simulated GiB" if simulated else "GiB",
    )
    if simulated:
        ax.title.set_fontsize(9)
    _legend(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _mark_out_of_memory(ax: Axes, summaries: Sequence[PointSummary]) -> None:
    """A red cross where a point's server ran out of GPU memory (503 in its GPU stage), with how
    many of its requests it refused so: where the memory curve fell off its cliff."""
    label = "out of memory: 503 in the GPU stage"
    for s in summaries:
        refused = sum(m.n_oom for m in s.trials)
        if not refused:
            continue
        peak = (_peak_memory(s) or 0) / 2**30
        ax.scatter([s.users or 0], [peak], marker="X", s=140, color="#c0392b", zorder=5, label=label)
        label = "_"  # one legend entry
        requests = sum(m.n_rows for m in s.trials)
        ax.annotate(
            f"{s.server}: OOM {refused}/{requests}",
            (s.users or 0, peak),
            textcoords="offset points",
            xytext=(6, -12),
            fontsize=7,
            color="#c0392b",
        )


def abandon_bars(abandon: Sequence[AbandonSummary]) -> Figure:
    """Goodput and wasted GPU seconds per server at each abandon point, 95% intervals as whiskers."""
    if not abandon:
        return message_figure("Abandoned requests", "no abandon scenario in this run")
    with_run = _several_runs(abandon)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = [
        f"{series_label(a, with_run)}\n{a.load_point}{'' if a.verdict == 'VALID' else ' (INVALID)'}"
        for a in abandon
    ]
    x = np.arange(len(abandon))
    for ax, (name, unit, values) in zip(
        axes,
        (
            ("Goodput: images delivered to clients still waiting", "images/s", [a.goodput for a in abandon]),
            (
                "GPU time spent on answers nobody received",
                "device seconds per trial",
                [a.wasted_gpu_s for a in abandon],
            ),
        ),
        strict=True,
    ):
        heights = [_centre(v, 1.0) or 0.0 for v in values]
        errors = np.array([_whisker(v, 1.0) for v in values]).T
        ax.bar(x, heights, yerr=errors, capsize=4, color="#4f81bd")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set(title=name, ylabel=unit)
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Abandon scenario (whiskers: 95% CI over trials)", fontsize=10)
    fig.tight_layout()
    return fig


def batching(points: Sequence[BatchPoint]) -> Figure:
    """Left: each batched point's GPU calls by batch size (a histogram per point, side by side).
    Right: throughput and p90 against the point's mean batch size, per server (95% whiskers)."""
    if not points:
        return message_figure("Batching", "no server formed a batch in this run")
    fig, (hist, perf) = plt.subplots(1, 2, figsize=(13, 4.4))
    sizes = sorted({size for b in points for size in b.calls_by_size})
    width = 0.8 / len(points)
    x = np.arange(len(sizes))
    for i, b in enumerate(points):
        share = [b.calls_by_size.get(size, 0) / max(b.calls, 1) for size in sizes]
        hollow = b.verdict != "VALID"
        hist.bar(
            x + i * width - 0.4 + width / 2,
            share,
            width,
            label=f"{b.server}/{b.client} {b.load_point}{' (INVALID)' if hollow else ''}",
            fill=not hollow,
            edgecolor="black" if hollow else None,
        )
    hist.set_xticks(x, [str(size) for size in sizes])
    hist.set(title="GPU calls by batch size, per load point", xlabel="batch size", ylabel="share of calls")
    hist.legend(fontsize=6)
    hist.grid(alpha=0.3, axis="y")
    latency = perf.twinx()
    for server in sorted({b.server for b in points}):
        own = sorted(
            (b for b in points if b.server == server and b.mean_batch), key=lambda b: b.mean_batch or 0
        )
        batch = [b.mean_batch or 0.0 for b in own]
        for ax, name, values, scale, marker in (
            (perf, "img/s", [b.throughput for b in own], 1.0, "o"),
            (latency, "p90 ms", [b.p90 for b in own], 1e3, "s"),
        ):
            drawn = [(m, v) for m, v in zip(batch, values, strict=True) if v is not None]
            if not drawn:
                continue
            xs = [m for m, _ in drawn]
            ys = [_centre(v, scale) or 0.0 for _, v in drawn]
            errors = np.array([_whisker(v, scale) for _, v in drawn]).T
            style = "-" if name == "img/s" else "--"
            label = f"{server} {name}"
            ax.errorbar(xs, ys, yerr=errors, marker=marker, linestyle=style, capsize=3, label=label)
    perf.set(title="Throughput (—) and p90 (--) against mean batch size", xlabel="requests per GPU call")
    perf.set_ylabel("images/s")
    latency.set_ylabel("p90 ms")
    handles = perf.get_legend_handles_labels()
    more = latency.get_legend_handles_labels()
    perf.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="upper left")
    perf.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# the soak figure's panels: (column or "held", title, y label, scale)
_SOAK_PANELS = (
    ("rss_bytes", "Resident memory (RSS)", "MB", 1e-6),
    ("fds", "Open file descriptors", "count", 1.0),
    ("threads", "Threads", "count", 1.0),
    ("temp_bytes", "Temp dir (uploads, results)", "MB", 1e-6),
    ("gpu_bytes", "GPU memory (nvidia-smi)", "MB", 1e-6),
    ("held", "What the server holds (/ledger held)", "count", 1.0),
)


def soak_resources(resources: pd.DataFrame | None) -> Figure:
    """Each sampled resource of each soak point against time since its first sample, one line per
    server (and held entry): memory, descriptors, threads, temp dir, GPU memory, held."""
    if resources is None or resources.empty:
        return message_figure("Soak", "no resource samples in this run")
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    series = list(resources.groupby(["server", "client", "load_point", "trial"], sort=False))
    for ax, (column, title, unit, scale) in zip(axes.ravel(), _SOAK_PANELS, strict=True):
        for (server, client, load_point, trial), samples in series:
            samples = samples.sort_values("t")
            t = samples["t"].to_numpy(dtype=float) - float(samples["t"].iloc[0])
            label = f"{server}/{client} {load_point}" + (f" trial {trial}" if trial != 1 else "")
            if column == "held":
                held = pd.DataFrame.from_records([json.loads(text or "{}") for text in samples["held"]])
                for key in (k for k in held.columns if not str(k).endswith("_bytes")):  # bytes: own panel
                    values = pd.to_numeric(held[key], errors="coerce")
                    if values.fillna(0).any():
                        ax.plot(t, values, label=f"{server} {key}", lw=1)
                continue
            values = samples[column].to_numpy(dtype=float) * scale
            if np.isfinite(values).any():
                ax.plot(t, values, label=label, lw=1.2)
        ax.set(title=title, xlabel="seconds since the soak began", ylabel=unit)
        ax.title.set_fontsize(10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
        else:
            ax.text(0.5, 0.5, "not sampled (or always 0)", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Soak: what each server process held over time (the memory slope is taken over the second half)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def closed_vs_open_tail(summaries: Sequence[PointSummary]) -> Figure:
    """Tail latency against achieved throughput, closed loop vs open loop: p99 where the
    pooled samples support it, else p90 (said in the title)."""
    has_p99 = any("p99" in s.intervals for s in summaries if s.scenario in SWEEP_SCENARIOS)
    stat = "p99" if has_p99 else "p90"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = False
    for scenario, style in ((ScenarioName.THROUGHPUT, "-"), (ScenarioName.OPEN_LOOP, "--")):
        for label, points in _series(summaries, scenario).items():
            ordered = sorted(points, key=lambda s: s.estimate("throughput") or 0.0)
            ys = [s.intervals.get(stat) for s in ordered]
            drawn |= any(y is not None for y in ys)
            _plot_points(
                ax,
                [s.intervals.get("throughput") for s in ordered],
                ys,
                [s.valid for s in ordered],
                f"{label} {scenario}",
                style,
                y_scale=1e3,
            )
    title = (
        "Closed vs open loop — p99"
        if has_p99
        else "Closed vs open loop — p90 (too few samples for p99 at every point)"
    )
    ax.set(title=title, xlabel="achieved images/s", ylabel="latency, ms")
    if drawn:
        _legend(ax)
    else:
        ax.text(0.5, 0.5, "no sweep point has enough samples for p90", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


FOOTER_LOUD_COLOUR = "#c0392b"


def add_footer(fig: Figure, footer: str, loud: bool = False) -> None:
    """A line under the figure naming model, weights and device (red and bold when ``loud``:
    a simulated GPU or random weights). ``png_bytes`` saves with a tight box, which grows
    to take in this text below the axes."""
    fig.text(
        0.5,
        0.0,
        footer,
        ha="center",
        va="top",
        fontsize=8,
        color=FOOTER_LOUD_COLOUR if loud else "dimgray",
        fontweight="bold" if loud else "normal",
        wrap=True,
    )


def png_bytes(fig: Figure, footer: str, loud: bool = False) -> bytes:
    """The figure as PNG with its footer (also stored as the PNG's ``Description`` text),
    closed afterwards so a long report does not hoard memory."""
    add_footer(fig, footer, loud)
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format="png",
        dpi=90,
        bbox_inches="tight",
        pad_inches=0.15,
        metadata={"Description": footer},
    )
    plt.close(fig)
    return buffer.getvalue()
