"""What the HTML report and the Markdown summary both show as text: table columns and
cells, and the validity rules in words.

Cells carry no unit (the column header names it) and "—" where a value is missing.
"""

from __future__ import annotations

from reports.metrics.points import PointMetrics
from reports.metrics.rules import ValidityRules
from reports.metrics.sweeps import Knee


def ms_cell(value: float | None) -> str:
    """Seconds as a millisecond figure without its unit (the column header carries it), or "—"."""
    return "—" if value is None else f"{value * 1e3:.1f}"


def num_cell(value: float | None, spec: str = ".2f") -> str:
    """A number formatted by ``spec``, or "—" where there is none."""
    return "—" if value is None else format(value, spec)


def pct_cell(value: float | None) -> str:
    """A fraction as a whole percentage, or "—"."""
    return "—" if value is None else f"{value:.0%}"


def mib_cell(value: int | None) -> str:
    """Bytes as whole MiB without the unit, or "—"."""
    return "—" if value is None else f"{value / 2**20:.0f}"


POINT_COLUMNS: tuple[str, ...] = (
    "server",
    "client",
    "scenario",
    "load",
    "verdict",
    "measured / ok",
    "errors",
    "img/s",
    "thirds spread",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "decomposed mean (n)",
    "wait",
    "pre",
    "gpu",
    "post",
    "protocol",
    "collisions",
    "max depth",
    "inflation",
    "peak MiB",
    "Little client",
    "Little server",
    "send lag p99 ms",
    "reasons / notes",
)


def point_cells(m: PointMetrics) -> list[str]:
    """A point's row of the HTML report's full table, in ``POINT_COLUMNS`` order."""
    errors = ", ".join(f"{k}: {v}" for k, v in m.errors.items()) or "—"
    little_client = f"{num_cell(m.client_in_flight)} vs {num_cell(m.client_rate_x_latency)}"
    little_server = f"{num_cell(m.server_in_flight)} vs {num_cell(m.server_rate_x_latency)}"
    return [
        m.server,
        m.client,
        m.scenario,
        m.load_point,
        m.verdict,
        f"{m.n_measured} / {m.n_ok}",
        errors,
        num_cell(m.throughput_rps),
        pct_cell(m.thirds_spread),
        ms_cell(m.p50_s),
        ms_cell(m.p90_s),
        ms_cell(m.p99_s),
        ms_cell(m.p999_s),
        ms_cell(m.max_s),
        "—" if m.decomposed_latency_s is None else f"{ms_cell(m.decomposed_latency_s)} ({m.n_decomposed})",
        ms_cell(m.wait_s),
        ms_cell(m.pre_s),
        ms_cell(m.gpu_s),
        ms_cell(m.post_s),
        ms_cell(m.protocol_s),
        pct_cell(m.collision_share),
        "—" if m.max_gpu_depth is None else str(m.max_gpu_depth),
        "—" if m.service_inflation is None else f"{m.service_inflation:.2f}×",
        mib_cell(m.peak_gpu_bytes),
        little_client,
        little_server,
        ms_cell(m.send_lag_p99_s),
        "; ".join(m.reasons + m.notes),
    ]


def knee_cells(k: Knee) -> list[str]:
    """A knee's row, in ``KNEE_COLUMNS`` order."""
    load = "none" if k.load is None else f"{k.load:g}"
    return [
        f"{k.server}/{k.client}",
        k.scenario,
        load,
        ms_cell(k.p90_s),
        ms_cell(k.baseline_p90_s),
        ms_cell(k.limit_s),
        k.reason,
    ]


KNEE_COLUMNS = ("series", "sweep", "knee load", "p90 ms", "single-stream p90 ms", "limit ms", "how")


SUMMARY_POINT_COLUMNS: tuple[str, ...] = (
    "server",
    "client",
    "scenario",
    "load",
    "verdict",
    "img/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "collisions",
    "reasons",
)


def summary_point_cells(m: PointMetrics) -> list[str]:
    """A point's row of the Markdown summary's short table, in ``SUMMARY_POINT_COLUMNS`` order:
    the full table's cells, then its reasons (the notes left out)."""
    full = dict(zip(POINT_COLUMNS, point_cells(m), strict=True))
    return [*(full[column] for column in SUMMARY_POINT_COLUMNS[:-1]), "; ".join(m.reasons) or "—"]


def rules_text(rules: ValidityRules) -> list[str]:
    """The verdict rules, as applied, in words."""
    return [
        f"Warm-up excluded: the first {rules.warmup_fraction:.0%} of the window or "
        f"{rules.warmup_requests_per_user} "
        "requests per user (one user in open loop), whichever is longer.",
        f"Percentiles shown only with enough samples: p90 ≥ {rules.min_samples_p90}, p99 ≥ "
        f"{rules.min_samples_p99}, "
        f"p99.9 ≥ {rules.min_samples_p999}; a point missing a percentile is VALID for what it shows.",
        f"INVALID when the load process averaged > {rules.max_load_cpu_percent:g}% CPU.",
        f"INVALID (open loop) when p99 send lag > max({rules.max_send_lag_s * 1e3:g} ms, "
        f"{rules.max_send_lag_gap_fraction:.0%} of the mean scheduled gap); for bursts (`collisions`) "
        f"when p99 send lag > max({rules.max_send_lag_s * 1e3:g} ms, "
        f"{rules.max_send_lag_gap_fraction:.0%} of the median burst makespan), i.e. the burst's "
        "requests did not leave together.",
        "INVALID (unstable) when, over the window's three thirds: closed loop, throughput spreads by "
        f"more than {rules.max_thirds_spread:.0%} of its mean; open loop, completions (counted one "
        "median latency later) ÷ arrivals scheduled in a third (achieved ÷ offered) is off 1.0 by more "
        f"than {rules.max_thirds_spread:.0%} in any third (the server fell behind or was draining a "
        "backlog); bursts, images per second of "
        f"burst makespan over the thirds of the bursts spreads by more than {rules.max_thirds_spread:.0%}.",
        "INVALID when client-side or server-side Little's law (mean in-flight vs rate × mean latency) "
        "disagrees "
        f"by more than {rules.max_littles_law_disagreement:.0%}.",
        "INVALID when no request succeeded in the measured window, or when the run ended before the "
        "point finished.",
        f"Knee: the highest VALID load whose p90 stays within {rules.knee_factor:g}× the single-stream p90.",
    ]
