"""The metrics of each load point and its VALID / INVALID verdict (docs/design.md §5).

``point_metrics`` cuts each point's warm-up, measures throughput, latency percentiles,
the decomposition, collisions, Little's law, send lag and the load process's CPU over the
measured window, and applies every rule of :class:`~reports.metrics.rules.ValidityRules`
to it; service-time inflation is then set against each server's single-stream GPU time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from reports.metrics.rows import (
    COMPONENTS,
    decomposition,
    error_kind,
    gpu_overlaps,
    latency,
    latency_start,
    littles_law,
    percentile,
)
from reports.metrics.rules import BASELINE_SCENARIO, INVALID, VALID, ValidityRules, warmup_end
from reports.schema import PointRecord, ScenarioName


@dataclass
class PointMetrics:
    """Everything measured at one (run, server, client, scenario, load point), with its verdict."""

    run_id: str
    server: str
    client: str
    scenario: str
    load_point: str
    users: int | None
    rate: float | None
    load: float  # the x of load axes: users (closed loop, bursts) or offered rate (open loop)
    verdict: str = INVALID
    reasons: list[str] = field(default_factory=list)  # why INVALID
    notes: list[str] = field(default_factory=list)  # what was not checked or is worth knowing
    n_rows: int = 0
    n_measured: int = 0  # rows that started inside the measured window
    n_ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # "kind [status]" -> count
    window_start: float = float("nan")  # measured window, after the warm-up cut
    window_end: float = float("nan")
    window_s: float = 0.0
    throughput_rps: float = 0.0
    thirds_rps: list[float] = field(default_factory=list)  # successful completions/s per third
    thirds_offered_rps: list[float] = field(default_factory=list)  # open loop: scheduled arrivals/s
    thirds_ratio: list[float] = field(default_factory=list)  # open loop: achieved / offered per third
    thirds_spread: float | None = None  # the statistic the stability rule compares (see thirds_basis)
    thirds_basis: str = ""  # what the thirds compare: window, bursts or achieved / offered
    p50_s: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None
    p999_s: float | None = None
    max_s: float | None = None
    mean_latency_s: float | None = None  # over ok and timed-out rows (the percentiles' sample)
    # The decomposition covers only successful requests with a joined ledger row: its five
    # means add up to decomposed_latency_s, the mean latency of exactly those n_decomposed rows.
    n_decomposed: int = 0
    decomposed_latency_s: float | None = None
    wait_s: float | None = None
    pre_s: float | None = None
    gpu_s: float | None = None
    post_s: float | None = None
    protocol_s: float | None = None
    gpu_median_s: float | None = None
    service_inflation: float | None = None  # gpu median / single-stream gpu median
    collision_share: float | None = None
    max_gpu_depth: int | None = None  # from the ledger's gpu_depth, else computed overlap
    peak_gpu_bytes: int | None = None
    load_cpu_percent: float | None = None
    send_lag_p99_s: float | None = None
    send_lag_limit_s: float | None = None
    client_in_flight: float | None = None
    client_rate_x_latency: float | None = None
    client_littles_disagreement: float | None = None
    server_in_flight: float | None = None
    server_rate_x_latency: float | None = None
    server_littles_disagreement: float | None = None

    @property
    def valid(self) -> bool:
        return self.verdict == VALID


def _nan_to_none(value: float) -> float | None:
    """None where the value is NaN (a quantity that could not be computed), else the value."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _point_load(users: int | None, rate: float | None) -> float:
    if rate is not None and not math.isnan(rate):
        return float(rate)
    return float(users) if users is not None else float("nan")


def measured_window(rows: pd.DataFrame, point: PointRecord, rules: ValidityRules) -> tuple[float, float]:
    """[w0, w1]: the point's window less the warm-up, the longer of a fraction of the
    window and the first ``warmup_requests_per_user`` x users requests (one "user" in open loop)."""
    starts = np.sort(latency_start(rows).dropna().to_numpy(dtype=float))
    return warmup_end(point.t_start, point.t_end, starts.tolist(), point.users, rules), point.t_end


def point_metrics(
    table: pd.DataFrame,
    points: Sequence[PointRecord],
    rules: ValidityRules,
    *,
    run_id: str = "",
    device: str = "",
) -> list[PointMetrics]:
    """Metrics and verdict for every load point of one run.

    ``points`` are the run's records; rows whose point is missing from them (a run that
    ended mid-point) get a point derived from the rows, which is INVALID by construction.
    ``device`` is the model's device: on CPU a collision is thread oversubscription.
    """
    overlaps = gpu_overlaps(table)
    keys = ["server", "client", "scenario", "load_point"]
    recorded = {(p.server, p.client, p.scenario, p.load_point): p for p in points}
    results: list[PointMetrics] = []
    for key, rows in table.groupby(keys, sort=False):
        point = recorded.pop(key, None)
        unfinished = point is None
        if point is None:
            point = _point_from_rows(rows)
        metrics = _one_point(rows, overlaps.loc[rows.index], point, rules, run_id, device)
        if unfinished:
            metrics.reasons.append(
                "point not in run.json: the run ended before this point finished (window taken from its rows)"
            )
            metrics.verdict = INVALID
        results.append(metrics)
    for point in recorded.values():  # recorded but not one row came back
        empty = table.iloc[0:0]
        results.append(_one_point(empty, overlaps.iloc[0:0], point, rules, run_id, device))
    _add_inflation(results)
    return results


def _point_from_rows(rows: pd.DataFrame) -> PointRecord:
    first = rows.iloc[0]
    users = first["users"]
    rate = first["rate"]
    return PointRecord(
        server=str(first["server"]),
        client=str(first["client"]),
        scenario=str(first["scenario"]),
        load_point=str(first["load_point"]),
        users=None if pd.isna(users) else int(users),
        rate=None if pd.isna(rate) else float(rate),
        t_start=float(latency_start(rows).min()),
        t_end=float(rows["t_done"].max()),
        t_drain_end=None,
        load_cpu_percent=None,
        peak_gpu_bytes=None,
    )


def _one_point(
    rows: pd.DataFrame,
    overlaps: pd.DataFrame,
    point: PointRecord,
    rules: ValidityRules,
    run_id: str,
    device: str,
) -> PointMetrics:
    m = PointMetrics(
        run_id=run_id,
        server=point.server,
        client=point.client,
        scenario=point.scenario,
        load_point=point.load_point,
        users=point.users,
        rate=point.rate,
        load=_point_load(point.users, point.rate),
        n_rows=len(rows),
        peak_gpu_bytes=point.peak_gpu_bytes,
        load_cpu_percent=point.load_cpu_percent,
    )
    if point.note:
        m.notes.append(point.note)
    if point.dropped:
        m.notes.append(f"the server's ledger dropped {point.dropped} rows: server-side figures are partial")
    if rows.empty:
        m.reasons.append("no request of this point was recorded")
        return m

    w0, w1 = measured_window(rows, point, rules)
    m.window_start, m.window_end, m.window_s = w0, w1, max(w1 - w0, 0.0)
    starts = latency_start(rows)
    measured = rows[(starts >= w0) & (starts <= w1)]
    m.n_measured = len(measured)
    ok = measured["ok"].astype(bool)
    m.n_ok = int(ok.sum())
    failed = measured[~ok]
    if not failed.empty:
        m.errors = {str(k): int(v) for k, v in error_kind(failed).value_counts().sort_index().items()}

    _throughput(m, rows, w0, w1, rules)
    _latencies(m, measured, ok, rules)
    _decomposition(m, measured, ok)
    _collisions(m, measured, overlaps.loc[measured.index], device)
    _littles_law(m, rows, w0, w1, rules)
    _send_lag(m, measured, point, w0, w1, rules)
    _load_cpu(m, rules)
    if m.window_s <= 0 or m.n_measured == 0:
        m.reasons.insert(0, "every request fell inside the warm-up: no measured window")
    elif m.n_ok == 0:
        m.reasons.insert(0, "no successful request in the measured window")
    m.verdict = INVALID if m.reasons else VALID
    return m


def _throughput(m: PointMetrics, rows: pd.DataFrame, w0: float, w1: float, rules: ValidityRules) -> None:
    """Throughput over the measured window and the stability rule on its thirds.

    Closed loop: completions per third of the window, compared with each other. Bursts
    (``collisions``): images per second of burst makespan over the thirds of the bursts.
    Open loop: completions in each third against the arrivals scheduled in it; below
    capacity completions follow the Poisson arrivals, so comparing the thirds' completions
    with each other would call most honest points unstable, while achieved / offered stays
    near 1 wherever the server keeps up. The point is stable when every third's ratio lies
    within ``max_thirds_spread`` of 1.0: a server that falls behind (no steady state: its
    latency grows with the window) or is still draining a backlog fails. Completions are
    counted one median latency later than the arrivals (the last third then reaches into
    the drain), so a request scheduled late in a third counts in the third it arrived in
    instead of leaving the window's last third short by the requests still in service.
    """
    if w1 <= w0:
        return
    done_ok = rows.loc[rows["ok"].astype(bool), "t_done"].to_numpy(dtype=float)
    in_window = done_ok[(done_ok >= w0) & (done_ok <= w1)]
    m.throughput_rps = len(in_window) / (w1 - w0)
    edges = np.linspace(w0, w1, 4)
    third_s = (w1 - w0) / 3
    if m.scenario == ScenarioName.OPEN_LOOP and rows["t_scheduled"].notna().any():
        _open_loop_thirds(m, rows, edges, rules)
        return
    if m.scenario == ScenarioName.COLLISIONS:
        ok_rows = rows[rows["ok"].astype(bool) & rows["t_done"].between(w0, w1)]
        m.thirds_rps = burst_thirds_rps(ok_rows)
        m.thirds_basis = "the bursts' thirds (images / burst makespan)"
    else:
        counts, _ = np.histogram(in_window, bins=edges)
        m.thirds_rps = [float(c / third_s) for c in counts]
        m.thirds_basis = "the window's thirds (completions per third)"
        if m.scenario == ScenarioName.OPEN_LOOP:
            m.notes.append("open-loop rows carry no t_scheduled: thirds compared by completions only")
    mean = float(np.mean(m.thirds_rps)) if m.thirds_rps else 0.0
    if mean > 0:
        m.thirds_spread = (max(m.thirds_rps) - min(m.thirds_rps)) / mean
        if m.thirds_spread > rules.max_thirds_spread:
            m.reasons.append(
                f"unstable: throughput across {m.thirds_basis} varies by {m.thirds_spread:.0%} "
                f"of its mean (limit {rules.max_thirds_spread:.0%})"
            )


def _open_loop_thirds(m: PointMetrics, rows: pd.DataFrame, edges: np.ndarray, rules: ValidityRules) -> None:
    third_s = float(edges[1] - edges[0])
    ok_rows = rows[rows["ok"].astype(bool)]
    starts = latency_start(ok_rows)
    in_window = ok_rows[(starts >= edges[0]) & (starts <= edges[-1])]
    shift = float(latency(in_window).median()) if not in_window.empty else 0.0
    shift = 0.0 if math.isnan(shift) else max(shift, 0.0)
    achieved, _ = np.histogram(ok_rows["t_done"].to_numpy(dtype=float), bins=edges + shift)
    scheduled = rows["t_scheduled"].dropna().to_numpy(dtype=float)
    offered, _ = np.histogram(scheduled, bins=edges)
    m.thirds_rps = [float(c / third_s) for c in achieved]
    m.thirds_offered_rps = [float(c / third_s) for c in offered]
    m.thirds_basis = (
        "achieved ÷ offered per third (completions, one median latency "
        f"({shift * 1e3:.0f} ms) later, vs arrivals scheduled in it)"
    )
    if (offered == 0).any():
        m.notes.append(
            "stability not checked: a third of the window had no scheduled arrival "
            f"(arrivals per third {'/'.join(str(int(c)) for c in offered)})"
        )
        return
    m.thirds_ratio = [float(a / o) for a, o in zip(achieved, offered, strict=True)]
    m.thirds_spread = max(abs(r - 1.0) for r in m.thirds_ratio)
    if m.thirds_spread > rules.max_thirds_spread:
        ratios = " / ".join(f"{r:.2f}" for r in m.thirds_ratio)
        low = min(m.thirds_ratio) < 1.0 - rules.max_thirds_spread
        what = "the server fell behind the offered load" if low else "the server was draining a backlog"
        m.reasons.append(
            f"unstable: {m.thirds_basis} is {ratios}, off 1.0 by up to {m.thirds_spread:.0%} "
            f"(limit {rules.max_thirds_spread:.0%}): {what}"
        )


def burst_thirds_rps(rows: pd.DataFrame) -> list[float]:
    """Throughput of the first, middle and last third of a point's bursts, each as images per
    second of burst makespan (release to last completion).

    Bursts arrive in whole groups with idle drains between them, so counting completions per
    third of wall time would swing by a whole burst; the burst is the unit of stability here.
    Rows of one burst share their release time (``t_scheduled``).
    """
    bursts = rows.dropna(subset=["t_scheduled"]).groupby("t_scheduled")["t_done"].agg(["max", "size"])
    if len(bursts) < 3:
        return []
    makespans = bursts["max"].to_numpy(dtype=float) - bursts.index.to_numpy(dtype=float)
    sizes = bursts["size"].to_numpy(dtype=float)
    return [
        float(size_part.sum() / span_part.sum())
        for size_part, span_part in zip(np.array_split(sizes, 3), np.array_split(makespans, 3), strict=True)
        if span_part.sum() > 0
    ]


def _latencies(m: PointMetrics, measured: pd.DataFrame, ok: pd.Series, rules: ValidityRules) -> None:
    # Timeouts stay in the sample: in open loop they are the overload (docs/design.md §5), and
    # dropping them would hide it; fast failures (4xx, 503) would flatter it instead.
    timed_out = error_kind(measured).str.startswith("timeout") & ~ok
    values = latency(measured[ok | timed_out])
    if values.dropna().empty:
        return
    m.p50_s = percentile(values, 0.50, 1)
    m.p90_s = percentile(values, 0.90, rules.min_samples_p90)
    m.p99_s = percentile(values, 0.99, rules.min_samples_p99)
    m.p999_s = percentile(values, 0.999, rules.min_samples_p999)
    m.max_s = float(values.max())
    m.mean_latency_s = float(values.mean())
    n = int(values.notna().sum())
    missing = [
        name
        for name, floor in (
            ("p90", rules.min_samples_p90),
            ("p99", rules.min_samples_p99),
            ("p99.9", rules.min_samples_p999),
        )
        if n < floor
    ]
    if missing:
        m.notes.append(f"{', '.join(missing)} not shown: {n} samples (below the sample floor)")


def _decomposition(m: PointMetrics, measured: pd.DataFrame, ok: pd.Series) -> None:
    """Mean components over the successful rows with a joined ledger row; their sum is
    ``decomposed_latency_s``, the mean latency of those same rows (not ``mean_latency_s``,
    which also holds timeouts and rows without a ledger join)."""
    parts = decomposition(measured[ok]).dropna()
    if parts.empty:
        if m.n_ok:
            m.notes.append("no ledger rows joined: no wait/pre/gpu/post/protocol decomposition")
        return
    m.n_decomposed = len(parts)
    m.decomposed_latency_s = float(latency(measured.loc[parts.index]).mean())
    if m.n_decomposed < m.n_ok:
        m.notes.append(
            f"decomposition over the {m.n_decomposed} of {m.n_ok} successful requests with a ledger row"
        )
    means = parts.mean()
    m.wait_s, m.pre_s, m.gpu_s, m.post_s, m.protocol_s = (float(means[c]) for c in COMPONENTS)
    m.gpu_median_s = float(parts["gpu"].median())


def _collisions(m: PointMetrics, measured: pd.DataFrame, overlaps: pd.DataFrame, device: str) -> None:
    known = overlaps["overlapping"].dropna()
    if known.empty:
        return
    m.collision_share = float((known > 0).mean())
    ledger_depth = measured["gpu_depth"].dropna()
    depth = ledger_depth if not ledger_depth.empty else overlaps["depth"].dropna()
    m.max_gpu_depth = int(depth.max())
    if m.collision_share > 0 and device.startswith("cpu"):
        m.notes.append("on CPU a collision is thread oversubscription, not a GPU effect")


def _littles_law(m: PointMetrics, rows: pd.DataFrame, w0: float, w1: float, rules: ValidityRules) -> None:
    if w1 <= w0:
        return
    client = rows[["t_done"]].assign(start=latency_start(rows)).dropna()
    l_c, lw_c, d_c = littles_law(client["start"].to_numpy(float), client["t_done"].to_numpy(float), w0, w1)
    m.client_in_flight, m.client_rate_x_latency = _nan_to_none(l_c), _nan_to_none(lw_c)
    m.client_littles_disagreement = _nan_to_none(d_c)
    server = rows[["t_recv", "t_send"]].dropna()
    if server.empty:
        m.notes.append("server-side Little's law not checked: no ledger rows")
    else:
        l_s, lw_s, d_s = littles_law(
            server["t_recv"].to_numpy(float), server["t_send"].to_numpy(float), w0, w1
        )
        m.server_in_flight, m.server_rate_x_latency = _nan_to_none(l_s), _nan_to_none(lw_s)
        m.server_littles_disagreement = _nan_to_none(d_s)
    limit = rules.max_littles_law_disagreement
    for side, value in (("client", m.client_littles_disagreement), ("server", m.server_littles_disagreement)):
        if value is not None and value > limit:
            m.reasons.append(
                f"{side}-side Little's law disagrees by {value:.0%} (mean in-flight vs rate x mean "
                f"latency; limit {limit:.0%})"
            )


def _send_lag(
    m: PointMetrics, measured: pd.DataFrame, point: PointRecord, w0: float, w1: float, rules: ValidityRules
) -> None:
    """Did the generator keep its schedule?

    Open loop: p99 send lag within max(max_send_lag_s, a fraction of the mean scheduled
    gap). Bursts (``collisions``): rows carry the burst's release as ``t_scheduled``, and a
    mean gap means nothing there; the sends must leave together, so the p99 send lag must
    stay within max(max_send_lag_s, the same fraction of the median burst makespan,
    release to last completion). Other scenarios are not checked.
    """
    scheduled = measured[measured["t_scheduled"].notna()]
    if scheduled.empty:
        return
    if m.scenario == ScenarioName.OPEN_LOOP:
        scale_s = 1.0 / point.rate if point.rate else (w1 - w0) / len(scheduled)  # the mean gap
        what, why = "open-loop", "(the generator could not keep its schedule)"
    elif m.scenario == ScenarioName.COLLISIONS:
        bursts = scheduled.groupby("t_scheduled")["t_done"].max()
        makespans = bursts.to_numpy(dtype=float) - bursts.index.to_numpy(dtype=float)
        scale_s = float(np.median(makespans))
        what = "burst"
        why = (
            f"(max({rules.max_send_lag_s * 1e3:g} ms, {rules.max_send_lag_gap_fraction:.0%} of the median "
            f"burst makespan {scale_s * 1e3:.1f} ms)): the burst's requests did not leave together"
        )
    else:
        m.notes.append(f"send lag not checked: the rule covers open-loop points and bursts, not {m.scenario}")
        return
    lag = scheduled["send_lag"].fillna(scheduled["t_sent"] - scheduled["t_scheduled"])
    m.send_lag_limit_s = max(rules.max_send_lag_s, rules.max_send_lag_gap_fraction * scale_s)
    m.send_lag_p99_s = float(np.quantile(lag.to_numpy(float), 0.99))
    if m.send_lag_p99_s > m.send_lag_limit_s:
        m.reasons.append(
            f"{what} send lag p99 {m.send_lag_p99_s * 1e3:.1f} ms exceeds "
            f"{m.send_lag_limit_s * 1e3:.1f} ms {why}"
        )


def _load_cpu(m: PointMetrics, rules: ValidityRules) -> None:
    if m.load_cpu_percent is None:
        m.notes.append("load-process CPU not recorded: the CPU rule was not checked")
    elif m.load_cpu_percent > rules.max_load_cpu_percent:
        m.reasons.append(
            f"load process averaged {m.load_cpu_percent:.0f}% CPU (limit {rules.max_load_cpu_percent:.0f}%): "
            "the generator, not the server, may have been the bottleneck"
        )


def _add_inflation(results: list[PointMetrics]) -> None:
    baselines = baseline_gpu_medians(results)
    for m in results:
        base = baselines.get(m.server)
        if base and m.gpu_median_s is not None:
            m.service_inflation = m.gpu_median_s / base


def baseline_gpu_medians(results: Sequence[PointMetrics]) -> dict[str, float]:
    """Single-stream GPU time per server: the `latency` scenario's median (its clients
    pooled by the mean of their medians), else the server's lowest-load point."""
    baselines: dict[str, float] = {}
    for server in {m.server for m in results}:
        own = [m for m in results if m.server == server and m.gpu_median_s is not None]
        single = [m.gpu_median_s for m in own if m.scenario == BASELINE_SCENARIO]
        if single:
            baselines[server] = float(np.mean(single))
        elif own:
            baselines[server] = min(own, key=lambda m: m.load).gpu_median_s  # type: ignore[assignment]
    return baselines


def metrics_frame(results: Iterable[PointMetrics]) -> pd.DataFrame:
    """The per-point metrics as one DataFrame (lists joined to text for display)."""
    records = []
    for m in results:
        record = asdict(m)
        record["reasons"] = "; ".join(m.reasons)
        record["notes"] = "; ".join(m.notes)
        record["errors"] = ", ".join(f"{k}: {v}" for k, v in m.errors.items())
        records.append(record)
    return pd.DataFrame.from_records(records)


def measured_rows(table: pd.DataFrame, m: PointMetrics) -> pd.DataFrame:
    """The rows of a point (``table`` is its run's) that started inside its measured window."""
    of_point = (
        (table["server"] == m.server)
        & (table["client"] == m.client)
        & (table["scenario"] == m.scenario)
        & (table["load_point"] == m.load_point)
    )
    starts = latency_start(table)
    return table[of_point & (starts >= m.window_start) & (starts <= m.window_end)]
