"""Every number a report shows, computed from the per-request rows and nothing else.

All metric logic of the project lives here, as pure functions over pandas DataFrames
(the table of ``reports.schema``) and the run's :class:`~reports.schema.PointRecord` s:
latency and its decomposition, collisions, throughput, Little's law, the validity
verdict of each load point (docs/design.md §5), the knee of each sweep and the
"which should I deploy?" comparison. Locust's own (rounded) statistics are never used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from reports.schema import PointRecord, ScenarioName

VALID = "VALID"
INVALID = "INVALID"
COMPONENTS: tuple[str, ...] = ("wait", "pre", "gpu", "post", "protocol")
# Sweeps whose points form a load axis (knee, saturation); the others are single probes.
SWEEP_SCENARIOS: tuple[str, ...] = (ScenarioName.THROUGHPUT, ScenarioName.OPEN_LOOP)
BASELINE_SCENARIO = ScenarioName.LATENCY
OPEN_LOOP_SCENARIO = ScenarioName.OPEN_LOOP
BURST_SCENARIO = ScenarioName.COLLISIONS
# Differences smaller than this fraction are called a tie in the deploy verdict: a few
# percent is within run-to-run noise for HTTP benchmarks on a shared host.
TIE_MARGIN = 0.05


@dataclass(frozen=True)
class ValidityRules:
    """docs/design.md §5 defaults; the load generator records ``asdict(ValidityRules())`` in run.json."""

    warmup_fraction: float = 0.1  # of the point's window, cut from its start
    warmup_requests_per_user: int = 3  # the cut is whichever of the two is longer
    min_samples_p90: int = 64  # binomial early-stopping floors per percentile
    min_samples_p99: int = 662
    min_samples_p999: int = 6636
    max_load_cpu_percent: float = 90.0
    max_send_lag_s: float = 0.010  # open loop: p99 send lag may reach max(this, ...)
    max_send_lag_gap_fraction: float = 0.05  # ... this fraction of the mean scheduled gap
    # Closed loop: (max - min) / mean of the thirds' throughput. Open loop: the largest
    # |achieved / offered - 1| over the thirds (completions vs arrivals scheduled in each).
    max_thirds_spread: float = 0.15
    max_littles_law_disagreement: float = 0.20  # |L - λW| / max(L, λW), each side
    knee_factor: float = 2.0  # knee: highest VALID load with p90 <= factor x single-stream p90


def rules_from_mapping(recorded: Mapping[str, Any] | None) -> ValidityRules:
    """The rules a run recorded (unknown keys ignored, missing ones at their defaults)."""
    if not recorded:
        return ValidityRules()
    known = {f.name for f in fields(ValidityRules)}
    return ValidityRules(**{k: v for k, v in recorded.items() if k in known})


# --- per-row quantities ------------------------------------------------------------


def latency_start(table: pd.DataFrame) -> pd.Series:
    """When each request's latency starts: the schedule in open loop, the send otherwise."""
    return table["t_scheduled"].fillna(table["t_sent"])


def latency(table: pd.DataFrame) -> pd.Series:
    """t_done − t_scheduled (open loop) or t_done − t_sent (closed loop), seconds."""
    return table["t_done"] - latency_start(table)


def decomposition(table: pd.DataFrame) -> pd.DataFrame:
    """wait / pre / gpu / post / protocol per row (NaN where no ledger row was joined).

    wait = (t_gpu_start − t_recv) − pre_s holds for every lock scope: with the FastAPI
    GPU lock pre runs before admission, inside Gradio's queue after it, and in both
    cases it lies between t_recv and t_gpu_start.
    """
    gpu = table["t_gpu_end"] - table["t_gpu_start"]
    wait = (table["t_gpu_start"] - table["t_recv"]) - table["pre_s"]
    parts = pd.DataFrame(
        {"wait": wait, "pre": table["pre_s"], "gpu": gpu, "post": table["post_s"]},
        index=table.index,
    )
    parts["protocol"] = latency(table) - parts.sum(axis=1, skipna=False)
    return parts


def error_kind(table: pd.DataFrame) -> pd.Series:
    """'kind [status]' for each failed row: the error text before ':' and the HTTP status."""
    kind = table["error"].fillna("").str.split(":", n=1).str[0].str.strip()
    kind = kind.where(kind != "", "error")
    return kind + " [" + table["status"].fillna(0).astype(int).astype(str) + "]"


def gpu_overlaps(table: pd.DataFrame) -> pd.DataFrame:
    """For each row: how many other requests' GPU intervals overlap its own, and the depth
    at its start (itself included), among requests of the same server process.

    Rows of one run and one server kind share a process; every row of that process counts,
    warm-up included, because a warm-up request occupies the GPU all the same.
    """
    result = pd.DataFrame({"overlapping": np.nan, "depth": np.nan}, index=table.index, dtype="float64")
    has_interval = table["t_gpu_start"].notna() & table["t_gpu_end"].notna()
    for _, group in table[has_interval].groupby(["run_id", "server"], sort=False):
        starts = group["t_gpu_start"].to_numpy(dtype=float)
        ends = group["t_gpu_end"].to_numpy(dtype=float)
        sorted_starts = np.sort(starts)
        sorted_ends = np.sort(ends)
        # Intervals j with start_j < end_i and end_j > start_i, minus the row itself.
        started_before_end = np.searchsorted(sorted_starts, ends, side="left")
        ended_before_start = np.searchsorted(sorted_ends, starts, side="right")
        itself = (starts < ends).astype(int)
        result.loc[group.index, "overlapping"] = started_before_end - ended_before_start - itself
        open_at_start = np.searchsorted(sorted_starts, starts, side="right") - ended_before_start
        result.loc[group.index, "depth"] = open_at_start
    return result


def percentile(values: pd.Series, q: float, min_samples: int) -> float | None:
    """The q-quantile (0..1) where the sample has at least ``min_samples`` values, else None."""
    clean = values.dropna()
    if len(clean) < max(min_samples, 1):
        return None
    return float(np.quantile(clean.to_numpy(dtype=float), q))


def mean_in_flight(starts: np.ndarray, ends: np.ndarray, w0: float, w1: float) -> float:
    """Time-average number of open intervals over [w0, w1] (the L of Little's law)."""
    if w1 <= w0:
        return float("nan")
    clipped = np.clip(np.minimum(ends, w1) - np.maximum(starts, w0), 0.0, None)
    return float(clipped.sum() / (w1 - w0))


def littles_law(starts: np.ndarray, ends: np.ndarray, w0: float, w1: float) -> tuple[float, float, float]:
    """(L, λW, disagreement) over the window: L the mean in-flight, λ the arrival rate of
    requests starting in the window and W their mean time in system;
    disagreement = |L − λW| / max(L, λW)."""
    in_window = (starts >= w0) & (starts < w1)
    length = w1 - w0
    l_in_flight = mean_in_flight(starts, ends, w0, w1)
    if length <= 0 or not in_window.any():
        return l_in_flight, float("nan"), float("nan")
    rate = in_window.sum() / length
    lambda_w = float(rate * np.mean(ends[in_window] - starts[in_window]))
    scale = max(l_in_flight, lambda_w)
    disagreement = 0.0 if scale == 0 else abs(l_in_flight - lambda_w) / scale
    return l_in_flight, lambda_w, disagreement


# --- per-point metrics and verdict ---------------------------------------------------


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


def _opt(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _point_load(users: int | None, rate: float | None) -> float:
    if rate is not None and not math.isnan(rate):
        return float(rate)
    return float(users) if users is not None else float("nan")


def measured_window(rows: pd.DataFrame, point: PointRecord, rules: ValidityRules) -> tuple[float, float]:
    """[w0, w1]: the point's window less the warm-up, the longer of a fraction of the
    window and the first ``warmup_requests_per_user`` x users requests (one "user" in open loop)."""
    t_start, t_end = point.t_start, point.t_end
    cut_by_time = t_start + rules.warmup_fraction * (t_end - t_start)
    warmup_requests = rules.warmup_requests_per_user * max(point.users or 1, 1)
    starts = np.sort(latency_start(rows).dropna().to_numpy(dtype=float))
    cut_by_count = starts[warmup_requests] if len(starts) > warmup_requests else t_end
    return max(cut_by_time, float(cut_by_count)), t_end


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
    if m.scenario == OPEN_LOOP_SCENARIO and rows["t_scheduled"].notna().any():
        _open_loop_thirds(m, rows, edges, rules)
        return
    if m.scenario == BURST_SCENARIO:
        ok_rows = rows[rows["ok"].astype(bool) & rows["t_done"].between(w0, w1)]
        m.thirds_rps = burst_thirds_rps(ok_rows)
        m.thirds_basis = "the bursts' thirds (images / burst makespan)"
    else:
        counts, _ = np.histogram(in_window, bins=edges)
        m.thirds_rps = [float(c / third_s) for c in counts]
        m.thirds_basis = "the window's thirds (completions per third)"
        if m.scenario == OPEN_LOOP_SCENARIO:
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
    m.client_in_flight, m.client_rate_x_latency = _opt(l_c), _opt(lw_c)
    m.client_littles_disagreement = _opt(d_c)
    server = rows[["t_recv", "t_send"]].dropna()
    if server.empty:
        m.notes.append("server-side Little's law not checked: no ledger rows")
    else:
        l_s, lw_s, d_s = littles_law(
            server["t_recv"].to_numpy(float), server["t_send"].to_numpy(float), w0, w1
        )
        m.server_in_flight, m.server_rate_x_latency = _opt(l_s), _opt(lw_s)
        m.server_littles_disagreement = _opt(d_s)
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
    lag = scheduled["send_lag"].fillna(scheduled["t_sent"] - scheduled["t_scheduled"])
    if m.scenario == OPEN_LOOP_SCENARIO:
        mean_gap = 1.0 / point.rate if point.rate else (w1 - w0) / len(scheduled)
        m.send_lag_limit_s = max(rules.max_send_lag_s, rules.max_send_lag_gap_fraction * mean_gap)
        m.send_lag_p99_s = float(np.quantile(lag.to_numpy(float), 0.99))
        if m.send_lag_p99_s > m.send_lag_limit_s:
            m.reasons.append(
                f"open-loop send lag p99 {m.send_lag_p99_s * 1e3:.1f} ms exceeds "
                f"{m.send_lag_limit_s * 1e3:.1f} ms (the generator could not keep its schedule)"
            )
    elif m.scenario == BURST_SCENARIO:
        bursts = scheduled.groupby("t_scheduled")["t_done"].max()
        makespans = bursts.to_numpy(dtype=float) - bursts.index.to_numpy(dtype=float)
        makespan = float(np.median(makespans))
        m.send_lag_limit_s = max(rules.max_send_lag_s, rules.max_send_lag_gap_fraction * makespan)
        m.send_lag_p99_s = float(np.quantile(lag.to_numpy(float), 0.99))
        if m.send_lag_p99_s > m.send_lag_limit_s:
            m.reasons.append(
                f"burst send lag p99 {m.send_lag_p99_s * 1e3:.1f} ms exceeds "
                f"{m.send_lag_limit_s * 1e3:.1f} ms (max({rules.max_send_lag_s * 1e3:g} ms, "
                f"{rules.max_send_lag_gap_fraction:.0%} of the median burst makespan "
                f"{makespan * 1e3:.1f} ms)): the burst's requests did not leave together"
            )
    else:
        m.notes.append(f"send lag not checked: the rule covers open-loop points and bursts, not {m.scenario}")


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


# --- sweeps: knee and saturation ---------------------------------------------------------


@dataclass(frozen=True)
class Knee:
    """The highest VALID load of a sweep whose p90 stays within knee_factor x single-stream p90."""

    run_id: str
    server: str
    client: str
    scenario: str
    load: float | None
    p90_s: float | None
    baseline_p90_s: float | None
    limit_s: float | None
    reason: str  # how it was found, or why there is none


def single_stream_p90(
    results: Sequence[PointMetrics], server: str, client: str, scenario: str
) -> tuple[float | None, str]:
    """The p90 a sweep's knee is judged against, and where it came from."""
    baseline = [
        m
        for m in results
        if (m.server, m.client, m.scenario) == (server, client, BASELINE_SCENARIO) and m.p90_s is not None
    ]
    if baseline:
        return baseline[0].p90_s, "p90 of the single-user `latency` scenario"
    sweep = sorted(
        (m for m in results if (m.server, m.client, m.scenario) == (server, client, scenario)),
        key=lambda m: m.load,
    )
    if sweep and sweep[0].p90_s is not None:
        return sweep[0].p90_s, f"p90 at the sweep's lowest load ({sweep[0].load_point}): no `latency` p90"
    return None, "no single-stream p90 (no `latency` point with enough samples, nor a lowest sweep point)"


def knees(results: Sequence[PointMetrics], rules: ValidityRules) -> list[Knee]:
    """One knee per (run, server, client, sweep scenario)."""
    found: list[Knee] = []
    sweeps = sorted(
        {(m.run_id, m.server, m.client, m.scenario) for m in results if m.scenario in SWEEP_SCENARIOS}
    )
    for run_id, server, client, scenario in sweeps:
        own = [m for m in results if m.run_id == run_id]
        base, source = single_stream_p90(own, server, client, scenario)
        if base is None:
            found.append(Knee(run_id, server, client, scenario, None, None, None, None, source))
            continue
        limit = rules.knee_factor * base
        inside = [
            m
            for m in own
            if (m.server, m.client, m.scenario) == (server, client, scenario)
            and m.valid
            and m.p90_s is not None
            and m.p90_s <= limit
        ]
        if not inside:
            reason = f"no VALID point with p90 within {rules.knee_factor:g}x the {source}"
            found.append(Knee(run_id, server, client, scenario, None, None, base, limit, reason))
            continue
        knee = max(inside, key=lambda m: m.load)
        reason = f"highest VALID load with p90 <= {rules.knee_factor:g}x the {source}"
        found.append(Knee(run_id, server, client, scenario, knee.load, knee.p90_s, base, limit, reason))
    return found


def saturation_throughput(results: Sequence[PointMetrics], server: str, client: str) -> PointMetrics | None:
    """The VALID closed-loop `throughput` point with the most images/s for a server and client."""
    valid = [
        m
        for m in results
        if (m.server, m.client, m.scenario) == (server, client, ScenarioName.THROUGHPUT) and m.valid
    ]
    return max(valid, key=lambda m: m.throughput_rps) if valid else None


# --- which should I deploy? ------------------------------------------------------------

# Client preference when pairing the two servers: the path a typical user of each takes
# (gradio_client uploads FileData; a FastAPI caller posts bytes), then the like-for-like ones.
FASTAPI_CLIENTS: tuple[str, ...] = ("fastapi", "fastapi-b64")
GRADIO_CLIENTS: tuple[str, ...] = ("gradio-file", "gradio-b64", "gradio-queue")

# Documented behaviour (docs/design.md §4, gradio 6.31.0); a run measures none of it.
DOCUMENTED_FACTS: tuple[str, ...] = (
    "ZeroGPU on Hugging Face Spaces needs gradio (`@spaces.GPU`); off Spaces that decorator is a no-op.",
    "`launch(mcp_server=True)` (with `gradio[mcp]`) exposes every public `@app.api` as an MCP tool at "
    "/gradio_api/mcp/.",
    "Gradio's queue serialises the whole function (pre, model and post) per `concurrency_limit`, default 1; "
    "results arrive over SSE; the queue lives in one process, so two uvicorn workers break result delivery.",
    "Off Spaces, `/gradio_api/run/<name>` bypasses the queue and its concurrency limit.",
    "Gradio's startup to first 200 takes 4-7 s, FastAPI's under 1 s.",
)


@dataclass(frozen=True)
class Finding:
    """One measured comparison: what it says and the rule that computed it."""

    label: str
    text: str
    rule: str


@dataclass
class Recommendation:
    """The deploy section: findings from VALID points only, the verdict, documented facts."""

    recommends: bool
    verdict: str
    findings: list[Finding] = field(default_factory=list)
    pair: tuple[str, str] | None = None  # (fastapi client, gradio client) compared
    facts: tuple[str, ...] = DOCUMENTED_FACTS


def _pick_client(results: Sequence[PointMetrics], server: str, preference: Sequence[str]) -> str | None:
    valid_clients = {m.client for m in results if m.server == server and m.valid}
    return next((c for c in preference if c in valid_clients), None)


def _valid_point(
    results: Sequence[PointMetrics], server: str, client: str, scenario: str, load: float | None = None
) -> PointMetrics | None:
    """The VALID point of that series at that load (any load when None)."""
    return next(
        (
            m
            for m in results
            if (m.server, m.client, m.scenario) == (server, client, scenario)
            and m.valid
            and load in (None, m.load)
        ),
        None,
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def recommend(results: Sequence[PointMetrics], device: str = "") -> Recommendation:
    """Gradio against FastAPI from one run's VALID points, each finding with its rule."""
    if not any(m.valid for m in results):
        return Recommendation(False, "No load point of this run is VALID: nothing is recommended.")
    fa_client = _pick_client(results, "fastapi", FASTAPI_CLIENTS)
    gr_client = _pick_client(results, "gradio", GRADIO_CLIENTS)
    if fa_client is None or gr_client is None:
        missing = "fastapi" if fa_client is None else "gradio"
        return Recommendation(
            False,
            f"No VALID point for the `{missing}` server: the two cannot be compared, nothing is recommended.",
        )
    rec = Recommendation(False, "", pair=(fa_client, gr_client))
    pair = f"fastapi/{fa_client} vs gradio/{gr_client}"

    fa_single = _valid_point(results, "fastapi", fa_client, BASELINE_SCENARIO)
    gr_single = _valid_point(results, "gradio", gr_client, BASELINE_SCENARIO)
    if fa_single and gr_single and fa_single.protocol_s is not None and gr_single.protocol_s is not None:
        added = gr_single.protocol_s - fa_single.protocol_s
        rec.findings.append(
            Finding(
                "Gradio's added protocol time per request",
                f"{_ms(added)} ({_ms(gr_single.protocol_s)} vs {_ms(fa_single.protocol_s)})",
                "mean protocol component (latency − wait − pre − gpu − post) at the VALID single-user "
                f"`latency` point, {pair}",
            )
        )

    fa_sat = saturation_throughput(results, "fastapi", fa_client)
    gr_sat = saturation_throughput(results, "gradio", gr_client)
    if fa_sat and gr_sat and gr_sat.throughput_rps > 0:
        ratio = fa_sat.throughput_rps / gr_sat.throughput_rps
        rec.findings.append(
            Finding(
                "Saturation throughput",
                f"fastapi {fa_sat.throughput_rps:.2f} img/s ({fa_sat.load_point}), gradio "
                f"{gr_sat.throughput_rps:.2f} img/s "
                f"({gr_sat.load_point}); fastapi/gradio = {ratio:.2f}",
                f"highest throughput over VALID closed-loop `throughput` points, {pair}",
            )
        )

    common = _highest_common_load(results, fa_client, gr_client)
    if common is not None:
        fa_hi, gr_hi = common
        if fa_hi.p90_s is not None and gr_hi.p90_s is not None:
            rec.findings.append(
                Finding(
                    f"p90 at {fa_hi.load_point}",
                    f"fastapi {_ms(fa_hi.p90_s)}, gradio {_ms(gr_hi.p90_s)}",
                    f"p90 at the highest `throughput` load where both are VALID, {pair}",
                )
            )
        if fa_hi.wait_s is not None and gr_hi.wait_s is not None:
            rec.findings.append(
                Finding(
                    "Serialising pre/post inside Gradio's queue",
                    f"mean wait gradio {_ms(gr_hi.wait_s)} vs fastapi {_ms(fa_hi.wait_s)} at "
                    f"{fa_hi.load_point}; "
                    "time each request holds the lock: gradio "
                    f"{_ms((gr_hi.pre_s or 0) + (gr_hi.gpu_s or 0) + (gr_hi.post_s or 0))} "
                    f"(pre+gpu+post) vs fastapi {_ms(fa_hi.gpu_s or 0)} (gpu only)",
                    "mean wait (t_gpu_start − t_recv − pre) and mean serialised span at the highest "
                    "common VALID `throughput` load",
                )
            )
    naive = _naive_control(results, fa_client, device)
    if naive is not None:
        rec.findings.append(naive)

    rec.verdict, rec.recommends = _verdict(fa_sat, gr_sat, common)
    return rec


def _highest_common_load(
    results: Sequence[PointMetrics], fa_client: str, gr_client: str
) -> tuple[PointMetrics, PointMetrics] | None:
    pairs = []
    for fa in results:
        if (fa.server, fa.client, fa.scenario) == (
            "fastapi",
            fa_client,
            ScenarioName.THROUGHPUT,
        ) and fa.valid:
            gr = _valid_point(results, "gradio", gr_client, ScenarioName.THROUGHPUT, fa.load)
            if gr is not None:
                pairs.append((fa, gr))
    return max(pairs, key=lambda p: p[0].load) if pairs else None


def _naive_control(results: Sequence[PointMetrics], fa_client: str, device: str) -> Finding | None:
    naive_points = [
        m
        for m in results
        if m.server == "fastapi-naive"
        and m.client == fa_client
        and m.valid
        and m.scenario in (ScenarioName.COLLISIONS, ScenarioName.THROUGHPUT)
    ]
    if not naive_points:
        return None
    naive = max(naive_points, key=lambda m: (m.scenario == ScenarioName.COLLISIONS, m.load))
    locked = _valid_point(results, "fastapi", fa_client, naive.scenario, naive.load)
    simulated = " (simulated)" if device == "simulated" else ""
    memory = (
        "n/a on CPU" if naive.peak_gpu_bytes is None else f"{naive.peak_gpu_bytes / 2**20:.0f} MiB{simulated}"
    )
    text = (
        f"at {naive.scenario} {naive.load_point}: naive collision share {naive.collision_share or 0:.0%}, "
        f"max depth {naive.max_gpu_depth}, service-time inflation "
        f"{naive.service_inflation or float('nan'):.2f}x, "
        f"peak memory {memory}"
    )
    if locked is not None:
        locked_memory = (
            "n/a" if locked.peak_gpu_bytes is None else f"{locked.peak_gpu_bytes / 2**20:.0f} MiB{simulated}"
        )
        text += (
            f"; locked fastapi: collisions {locked.collision_share or 0:.0%}, inflation "
            f"{locked.service_inflation or float('nan'):.2f}x, peak memory {locked_memory}, "
            f"throughput {locked.throughput_rps:.2f} vs naive {naive.throughput_rps:.2f} img/s"
        )
    if device.startswith("cpu"):
        text += " (CPU: a collision here is thread oversubscription)"
    return Finding(
        "Collisions and memory against the naive (unlocked) control",
        text,
        "highest VALID `collisions` (else `throughput`) point of fastapi-naive against the locked "
        "fastapi at the same load",
    )


def _verdict(
    fa_sat: PointMetrics | None, gr_sat: PointMetrics | None, common: tuple[PointMetrics, PointMetrics] | None
) -> tuple[str, bool]:
    features = "choose gradio.Server when you need Spaces, ZeroGPU, MCP or its queue UI"
    if fa_sat is None or gr_sat is None or gr_sat.throughput_rps <= 0 or common is None:
        return (
            "Not enough VALID `throughput` points on both servers to compare: nothing is recommended.",
            False,
        )
    fa_hi, gr_hi = common
    gain = fa_sat.throughput_rps / gr_sat.throughput_rps - 1
    if fa_hi.p90_s is not None and gr_hi.p90_s is not None:
        sooner = gr_hi.p90_s - fa_hi.p90_s
        at = f" at {fa_hi.load_point} (p90)"
    else:
        sooner = (gr_hi.p50_s or 0) - (fa_hi.p50_s or 0)
        at = f" at {fa_hi.load_point} (p50: too few samples for p90)"
    rule = (
        f"Rule: saturation throughput ratio and latency at the highest common VALID load; "
        f"differences under {TIE_MARGIN:.0%} of throughput count as a tie."
    )
    if abs(gain) < TIE_MARGIN:
        text = (
            f"Throughput is a tie (fastapi {gain:+.0%}); fastapi answers {_ms(sooner)} sooner{at}. "
            f"With no material cost either way, {features}; otherwise plain FastAPI."
        )
    elif gain > 0 and sooner >= 0:
        text = f"FastAPI serves {gain:.0%} more images/s and answers {_ms(sooner)} sooner{at}; {features}."
    elif gain < 0 and sooner <= 0:
        text = (
            f"gradio.Server serves {1 / (1 + gain) - 1:.0%} more images/s and answers {_ms(-sooner)} "
            f"sooner{at}: "
            "deploy gradio.Server; hand-rolled FastAPI buys nothing here."
        )
    else:
        faster = "FastAPI" if gain > 0 else "gradio.Server"
        text = (
            f"Mixed: {faster} has the higher saturation throughput ({gain:+.0%} for FastAPI) but the "
            "other answers "
            f"sooner{at} ({_ms(abs(sooner))}); pick by which matters to you, and {features}."
        )
    return f"{text} {rule}", True


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
