"""Figures of a report, drawn with matplotlib (Agg) from metrics and rows; no metric logic.

Every function returns a ``Figure``. Lines are one per series (server/client, prefixed by
the run where several runs share the axes); INVALID points are drawn hollow so they stay
visible without being mistaken for evidence. A figure that cannot be drawn says why.
``png_bytes`` renders a figure with a footer naming the model, its weights and the device
(docs/design.md §6), drawn on the image and kept in the PNG's metadata: the files in ``figures/``
are read on their own.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports.metrics.points import PointMetrics, measured_rows
from reports.metrics.rows import COMPONENTS, gpu_overlaps, latency
from reports.metrics.rules import SWEEP_SCENARIOS
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
HOLLOW_NOTE = "hollow markers: INVALID points"


def series_label(m: PointMetrics, with_run: bool) -> str:
    label = f"{m.server}/{m.client}"
    return f"{m.run_id}: {label}" if with_run else label


def _several_runs(results: Sequence[PointMetrics]) -> bool:
    return len({m.run_id for m in results}) > 1


def _series(results: Sequence[PointMetrics], scenario: str) -> dict[str, list[PointMetrics]]:
    with_run = _several_runs(results)
    grouped: dict[str, list[PointMetrics]] = {}
    for m in sorted((m for m in results if m.scenario == scenario), key=lambda m: m.load):
        grouped.setdefault(series_label(m, with_run), []).append(m)
    return grouped


def _sweeps_present(results: Sequence[PointMetrics]) -> list[str]:
    return [s for s in SWEEP_SCENARIOS if any(m.scenario == s for m in results)]


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


def _message_figure(title: str, message: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    return fig


def _plot_points(
    ax: plt.Axes,
    xs: Sequence[float],
    ys: Sequence[float | None],
    valid: Sequence[bool],
    label: str,
    style: str = "-",
) -> None:
    """A line through the points that have a value, filled markers VALID, hollow INVALID."""
    keep = [(x, y, v) for x, y, v in zip(xs, ys, valid, strict=True) if y is not None]
    if not keep:
        return
    x, y, v = (list(t) for t in zip(*keep, strict=True))
    (line,) = ax.plot(x, y, style, label=label)
    colour = line.get_color()
    ax.scatter(
        [a for a, ok in zip(x, v, strict=True) if ok],
        [b for b, ok in zip(y, v, strict=True) if ok],
        color=colour,
        zorder=3,
    )
    ax.scatter(
        [a for a, ok in zip(x, v, strict=True) if not ok],
        [b for b, ok in zip(y, v, strict=True) if not ok],
        facecolors="white",
        edgecolors=colour,
        zorder=3,
    )


def _to_ms(value: float | None) -> float | None:
    """Seconds as a millisecond float for an axis, None kept (a point with no value is not drawn)."""
    return None if value is None else value * 1e3


def latency_vs_load(results: Sequence[PointMetrics]) -> Figure:
    """p50 / p90 / p99 against load, one panel per sweep, one colour per server."""
    sweeps = _sweeps_present(results)
    if not sweeps:
        return _message_figure("Latency vs load", "no throughput or open-loop sweep in this run")
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.5 * len(sweeps), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], sweeps, strict=True):
        for label, points in _series(results, scenario).items():
            xs, valid = [m.load for m in points], [m.valid for m in points]
            for name, style in (("p50_s", "-"), ("p90_s", "--"), ("p99_s", ":")):
                _plot_points(
                    ax, xs, [_to_ms(getattr(m, name)) for m in points], valid, f"{label} {name[:-2]}", style
                )
        ax.set(title=f"Latency vs load — {scenario}", xlabel=X_LABEL[scenario], ylabel="latency, ms")
        _legend(ax)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def throughput_vs_load(results: Sequence[PointMetrics]) -> Figure:
    """Completed images/s in the measured window against load (open loop: offered = diagonal)."""
    sweeps = _sweeps_present(results)
    if not sweeps:
        return _message_figure("Throughput vs load", "no throughput or open-loop sweep in this run")
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.5 * len(sweeps), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], sweeps, strict=True):
        for label, points in _series(results, scenario).items():
            _plot_points(
                ax,
                [m.load for m in points],
                [m.throughput_rps for m in points],
                [m.valid for m in points],
                label,
            )
        if scenario == ScenarioName.OPEN_LOOP:
            top = max((m.load for m in results if m.scenario == scenario), default=1.0)
            ax.plot([0, top], [0, top], color="grey", lw=0.8, ls=":", label="offered")
        ax.set(title=f"Throughput vs load — {scenario}", xlabel=X_LABEL[scenario], ylabel="images/s")
        _legend(ax)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def throughput_vs_p90(results: Sequence[PointMetrics], knee_list: Sequence[Knee]) -> Figure:
    """p90 against throughput along each sweep, the knee starred."""
    sweeps = _sweeps_present(results)
    if not sweeps:
        return _message_figure("Throughput vs p90", "no throughput or open-loop sweep in this run")
    with_run = _several_runs(results)
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.5 * len(sweeps), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], sweeps, strict=True):
        for label, points in _series(results, scenario).items():
            _plot_points(
                ax,
                [m.throughput_rps for m in points],
                [_to_ms(m.p90_s) for m in points],
                [m.valid for m in points],
                label,
            )
        for knee in knee_list:
            if knee.scenario != scenario or knee.load is None:
                continue
            at = next(
                m
                for m in results
                if (m.run_id, m.server, m.client, m.scenario, m.load)
                == (knee.run_id, knee.server, knee.client, scenario, knee.load)
            )
            ax.scatter(
                [at.throughput_rps],
                [_to_ms(at.p90_s)],
                marker="*",
                s=220,
                color="gold",
                edgecolors="black",
                zorder=4,
            )
            ax.annotate(
                f"knee {series_label(at, with_run)} @ {at.load_point}",
                (at.throughput_rps, _to_ms(at.p90_s) or 0),
                textcoords="offset points",
                xytext=(6, 6),
                fontsize=7,
            )
        ax.set(title=f"Throughput vs p90 — {scenario} (★ knee)", xlabel="images/s", ylabel="p90 latency, ms")
        _legend(ax)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def latency_cdf(table: pd.DataFrame, results: Sequence[PointMetrics]) -> Figure:
    """Empirical CDF of measured latencies: the single-stream point and the highest
    closed-loop load, per series."""
    panels = [
        (ScenarioName.LATENCY, "single stream (`latency`)"),
        (ScenarioName.THROUGHPUT, "highest closed-loop load"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), squeeze=False)
    for ax, (scenario, title) in zip(axes[0], panels, strict=True):
        for label, points in _series(results, scenario).items():
            top = points[-1]  # _series sorts by load
            values = np.sort(latency(measured_rows(table, top)).dropna().to_numpy(float)) * 1e3
            if len(values):
                ax.step(
                    values,
                    np.arange(1, len(values) + 1) / len(values),
                    where="post",
                    label=f"{label} {top.load_point} (n={len(values)}{'' if top.valid else ', INVALID'})",
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
    """One bar per request's GPU interval in the `collisions` scenario, colliding ones red."""
    points = [m for m in results if m.scenario == ScenarioName.COLLISIONS]
    if not points:
        return _message_figure("GPU timeline", "no `collisions` scenario in this run")
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
            title=f"{m.server}/{m.client} {m.load_point}: collision share {share}, "
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


def decomposition_bars(results: Sequence[PointMetrics]) -> Figure:
    """Mean wait / pre / gpu / post / protocol, stacked, at the single-stream point and
    the highest closed-loop load of each series."""
    with_run = _several_runs(results)
    chosen: list[PointMetrics] = []
    for scenario in (ScenarioName.LATENCY, ScenarioName.THROUGHPUT):
        chosen.extend(points[-1] for points in _series(results, scenario).values())
    chosen = [m for m in chosen if m.gpu_s is not None]
    if not chosen:
        return _message_figure("Latency decomposition", "no ledger rows joined: nothing to decompose")
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(chosen)), 4.5))
    x = np.arange(len(chosen))
    bottom = np.zeros(len(chosen))
    for name in COMPONENTS:
        heights = np.array([(getattr(m, f"{name}_s") or 0.0) * 1e3 for m in chosen])
        ax.bar(x, heights, bottom=bottom, label=name, color=COMPONENT_COLOURS[name])
        bottom += heights
    labels = [
        f"{series_label(m, with_run)}\n{m.scenario} {m.load_point}{'' if m.valid else ' (INVALID)'}"
        for m in chosen
    ]
    ax.set_xticks(x, labels, fontsize=7, rotation=20, ha="right")
    ax.set(
        title="Where the time goes: means over successful requests with a ledger row\n"
        "(bar height = those requests' mean latency)",
        ylabel="ms",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


SIMULATED_DEVICE = "simulated"


def memory_vs_concurrency(results: Sequence[PointMetrics], device: str) -> Figure:
    """Peak memory per point against concurrency: GPU memory with CUDA; with the sim
    backend (device "simulated") the memory it accounts per in-flight call, titled as
    simulated; nothing on CPU."""
    simulated = device == SIMULATED_DEVICE
    what = "simulated memory" if simulated else "GPU memory"
    with_memory = [m for m in results if m.peak_gpu_bytes is not None and m.users is not None]
    if not (device.startswith("cuda") or simulated) or not with_memory:
        why = (
            f"device is {device or 'unknown'}: peak GPU memory exists only with CUDA (or as the sim "
            "backend's simulated memory), so this plot is absent"
            if not (device.startswith("cuda") or simulated)
            else f"no point recorded peak {what}"
        )
        return _message_figure("Peak memory vs concurrency", why)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    with_run = _several_runs(results)
    grouped: dict[str, list[PointMetrics]] = {}
    for m in sorted(with_memory, key=lambda m: m.users or 0):
        if m.scenario in (ScenarioName.THROUGHPUT, ScenarioName.COLLISIONS):
            grouped.setdefault(f"{series_label(m, with_run)} {m.scenario}", []).append(m)
    for label, points in grouped.items():
        _plot_points(
            ax,
            [m.users or 0 for m in points],
            [(m.peak_gpu_bytes or 0) / 2**30 for m in points],
            [m.valid for m in points],
            label,
        )
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


def closed_vs_open_tail(results: Sequence[PointMetrics]) -> Figure:
    """Tail latency against achieved throughput, closed loop vs open loop: p99 where the
    samples support it, else p90 (said in the title)."""
    has_p99 = any(m.p99_s is not None for m in results if m.scenario in SWEEP_SCENARIOS)
    stat = "p99_s" if has_p99 else "p90_s"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = False
    for scenario, style in ((ScenarioName.THROUGHPUT, "-"), (ScenarioName.OPEN_LOOP, "--")):
        for label, points in _series(results, scenario).items():
            ordered = sorted(points, key=lambda m: m.throughput_rps)
            ys = [_to_ms(getattr(m, stat)) for m in ordered]
            drawn |= any(y is not None for y in ys)
            _plot_points(
                ax,
                [m.throughput_rps for m in ordered],
                ys,
                [m.valid for m in ordered],
                f"{label} {scenario}",
                style,
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
