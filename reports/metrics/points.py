"""The metrics of each trial of each load point and its VALID / INVALID verdict (docs/design.md §5).

``point_metrics`` cuts each trial's warm-up, measures throughput, latency percentiles, the
decomposition, collisions, send lag and the load process's CPU over the measured window, and
applies every rule of :class:`~reports.metrics.rules.ValidityRules` to it: the error rate, a
stability bound scaled with the counts, the client's in-flight against the configured load
and its completions against the server ledger's; service-time inflation is then set against
each server's VALID single-stream GPU time. ``reports.metrics.summaries`` pools the trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from reports.metrics.rows import (
    COMPONENTS,
    decomposition,
    error_kind,
    gpu_overlaps,
    latency,
    latency_start,
    mean_in_flight,
    percentile,
)
from reports.metrics.rules import BASELINE_SCENARIO, INVALID, VALID, ValidityRules, warmup_end
from reports.schema import ABANDONED, PointRecord, ScenarioName

# Scenarios whose users stay at the configured count for the whole point (closed loop).
CLOSED_LOOP_SCENARIOS: tuple[str, ...] = (
    ScenarioName.LATENCY,
    ScenarioName.THROUGHPUT,
    ScenarioName.SPIKE,
    ScenarioName.MCP,
)
# Scenarios whose requests follow a seeded schedule at an offered rate (open loop): their send
# lag is judged against the mean scheduled gap.
SCHEDULED_SCENARIOS: tuple[str, ...] = (ScenarioName.OPEN_LOOP, ScenarioName.ABANDON, ScenarioName.SOAK)
# ... and those among them judged on completions against their arrivals (the abandon scenario
# is overloaded on purpose: it is judged on goodput, its delivered images, instead).
ARRIVAL_SCENARIOS: tuple[str, ...] = (ScenarioName.OPEN_LOOP, ScenarioName.SOAK)


@dataclass
class LoadPoint:
    """Which load point: its run, server, client, scenario and load."""

    run_id: str
    server: str
    client: str
    scenario: str
    load_point: str
    users: int | None
    rate: float | None
    load: float  # the x of load axes: users (closed loop, bursts) or offered rate (open loop)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The point within its run: (server, client, scenario, load point)."""
        return (self.server, self.client, self.scenario, self.load_point)

    def identity(self) -> dict[str, Any]:
        """The fields that name the point, to build another record of the same point."""
        return {f.name: getattr(self, f.name) for f in fields(LoadPoint)}


@dataclass
class PointMetrics(LoadPoint):
    """Everything measured in one trial of one (run, server, client, scenario, load point),
    with its verdict."""

    trial: int = 1
    verdict: str = INVALID
    reasons: list[str] = field(default_factory=list)  # why INVALID
    notes: list[str] = field(default_factory=list)  # what was not checked or is worth knowing
    n_rows: int = 0
    n_measured: int = 0  # rows that started inside the measured window
    n_ok: int = 0
    n_abandoned: int = 0  # measured requests whose client gave up (error kind "abandoned")
    # requests the server refused with 503 in its GPU stage: out of GPU memory (all the trial's rows)
    n_oom: int = 0
    error_rate: float | None = None  # failed / measured (the abandon scenario: abandoned ones aside)
    errors: dict[str, int] = field(default_factory=dict)  # "kind [status]" -> count
    backlog: int = 0  # requests already in the server when the point started
    window_start: float = float("nan")  # measured window, after the warm-up cut
    window_end: float = float("nan")
    window_s: float = 0.0
    throughput_rps: float = 0.0  # bursts: images per second of burst makespan
    # Stability: what each third of the window (of the bursts) achieved, what a stable point
    # would give there and how far it may stray by the rule, all in images/s (thirds_basis).
    thirds_rps: list[float] = field(default_factory=list)
    thirds_expected_rps: list[float] = field(default_factory=list)
    thirds_allowed_rps: list[float] = field(default_factory=list)
    thirds_spread: float | None = None  # the largest |achieved − expected| / expected of a third
    thirds_basis: str = ""
    n_latency: int = 0  # the latency sample: successful and timed-out measured requests
    p50_s: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None
    p999_s: float | None = None
    max_s: float | None = None
    mean_latency_s: float | None = None  # over the latency sample
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
    service_inflation: float | None = None  # gpu median / VALID single-stream gpu median
    collision_share: float | None = None
    max_gpu_depth: int | None = None  # from the ledger's gpu_depth, else computed overlap
    peak_gpu_bytes: int | None = None
    load_cpu_percent: float | None = None
    send_lag_p99_s: float | None = None
    send_lag_limit_s: float | None = None
    # Little's law checks that can fail: the client's mean in-flight (closed loop: over the
    # window; bursts: at each release) against the configured users or burst size, and the
    # client's completions against the server ledger's over the same window.
    client_in_flight: float | None = None
    configured_in_flight: int | None = None
    in_flight_disagreement: float | None = None
    client_completion_rps: float | None = None
    ledger_completion_rps: float | None = None
    completion_disagreement: float | None = None

    @property
    def valid(self) -> bool:
        return self.verdict == VALID


def _point_load(users: int | None, rate: float | None) -> float:
    if rate is not None and not math.isnan(rate):
        return float(rate)
    return float(users) if users is not None else float("nan")


def disagreement(a: float, b: float) -> float:
    """|a − b| / max(|a|, |b|): 0 when both are 0."""
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def is_single_stream(m: PointMetrics) -> bool:
    """One request at a time: the `latency` scenario, or a closed-loop sweep at one user."""
    return m.scenario == BASELINE_SCENARIO or (m.scenario == ScenarioName.THROUGHPUT and m.users == 1)


def measured_window(rows: pd.DataFrame, point: PointRecord, rules: ValidityRules) -> tuple[float, float]:
    """[w0, w1]: the point's window less the warm-up, the longer of a fraction of the
    window and the first ``warmup_requests_per_user`` x users requests (one "user" in open loop)."""
    starts = np.sort(latency_start(rows).dropna().to_numpy(dtype=float))
    return warmup_end(point.t_start, point.t_end, starts.tolist(), point.users, rules), point.t_end


def latency_sample(measured: pd.DataFrame) -> pd.Series:
    """The latencies a point's percentiles, CDF and intervals are taken over: its successful
    and its timed-out measured requests.

    Timeouts stay in: in open loop they are the overload (docs/design.md §5), and dropping
    them would hide it; fast failures (4xx, 503) would flatter it instead, so they stay out
    (and a point with too many of them is INVALID by the error-rate rule).
    """
    ok = measured["ok"].astype(bool)
    timed_out = error_kind(measured).str.startswith("timeout") & ~ok
    return latency(measured[ok | timed_out]).dropna()


def point_metrics(
    table: pd.DataFrame,
    points: Sequence[PointRecord],
    rules: ValidityRules,
    *,
    run_id: str = "",
    device: str = "",
    ledger: pd.DataFrame | None = None,
) -> list[PointMetrics]:
    """Metrics and verdict for every trial of every load point of one run.

    ``points`` are the run's records; rows whose point is missing from them (a run that
    ended mid-point) get a point derived from the rows, which is INVALID by construction.
    ``device`` is the model's device: on CPU a collision is thread oversubscription.
    ``ledger`` is the run's raw server ledger (``ledger.jsonl``), the independent count the
    client's completions are checked against; None where the run kept none.
    """
    overlaps = gpu_overlaps(table)
    keys = ["server", "client", "scenario", "load_point", "trial"]
    recorded = {(p.server, p.client, p.scenario, p.load_point, int(p.trial)): p for p in points}
    results: list[PointMetrics] = []
    for key, rows in table.groupby(keys, sort=False):
        server, client, scenario, load_point, trial = key
        point = recorded.pop((server, client, scenario, load_point, int(trial)), None)
        unfinished = point is None
        if point is None:
            point = _point_from_rows(rows)
        metrics = _one_point(rows, overlaps.loc[rows.index], point, rules, run_id, device, ledger)
        if unfinished:
            metrics.reasons.append(
                "point not in run.json: the run ended before this point finished (window taken from its rows)"
            )
            metrics.verdict = INVALID
        results.append(metrics)
    for point in recorded.values():  # recorded but not one row came back
        empty = table.iloc[0:0]
        results.append(_one_point(empty, overlaps.iloc[0:0], point, rules, run_id, device, ledger))
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
        trial=int(first["trial"]),
    )


def _one_point(
    rows: pd.DataFrame,
    overlaps: pd.DataFrame,
    point: PointRecord,
    rules: ValidityRules,
    run_id: str,
    device: str,
    ledger: pd.DataFrame | None,
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
        trial=int(point.trial),
        n_rows=len(rows),
        backlog=int(point.backlog),
        peak_gpu_bytes=point.peak_gpu_bytes,
        load_cpu_percent=point.load_cpu_percent,
    )
    if point.note:
        m.notes.append(point.note)
    if point.dropped:
        m.notes.append(f"the server's ledger dropped {point.dropped} rows: server-side figures are partial")
    if m.backlog > 0:
        m.reasons.append(
            f"backlog: {m.backlog} requests were still in the server when this point started (the "
            "previous point's wait for idle timed out), so its first requests queued behind them"
        )
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
    m.n_abandoned = int(abandoned(measured).sum())
    m.n_oom = int(out_of_memory(rows).sum())
    if m.scenario == ScenarioName.ABANDON:
        m.notes.append(
            "judged on goodput (images delivered to clients still waiting): its abandoned requests are "
            "the scenario's purpose, and its latencies are those of the delivered requests only"
        )

    _error_rate(m, rules)
    _throughput(m, rows, w0, w1, rules)
    _latencies(m, measured, rules)
    _decomposition(m, measured, ok)
    _collisions(m, measured, overlaps.loc[measured.index], device)
    _in_flight(m, rows, w0, w1, rules)
    _ledger_completions(m, rows, ledger, w0, w1, rules)
    _send_lag(m, measured, point, w0, w1, rules)
    _load_cpu(m, rules)
    if m.window_s <= 0 or m.n_measured == 0:
        m.reasons.insert(0, "every request fell inside the warm-up: no measured window")
    elif m.n_ok == 0:
        m.reasons.insert(0, "no successful request in the measured window")
    m.verdict = INVALID if m.reasons else VALID
    return m


def abandoned(rows: pd.DataFrame) -> pd.Series:
    """Rows whose client gave up at its client timeout and closed its connection."""
    return ~rows["ok"].astype(bool) & rows["error"].fillna("").str.startswith(f"{ABANDONED}:")


def out_of_memory(rows: pd.DataFrame) -> pd.Series:
    """Rows the server refused with 503 in its GPU stage: it ran out of GPU memory (or the sim
    backend's simulated memory) and said so (servers/core/backends/base.py GpuOutOfMemory)."""
    return (rows["server_status"] == 503).fillna(False).astype(bool) & (rows["stage"] == "gpu")


def _error_rate(m: PointMetrics, rules: ValidityRules) -> None:
    # the abandon scenario's clients give up on purpose: only other failures count against it
    excused = m.n_abandoned if m.scenario == ScenarioName.ABANDON else 0
    judged = m.n_measured - excused
    if judged <= 0:
        return
    failed = judged - m.n_ok
    m.error_rate = failed / judged
    if m.n_ok and m.error_rate > rules.max_error_rate:
        counted = {k: v for k, v in m.errors.items() if not (excused and k.startswith(ABANDONED))}
        kinds = ", ".join(f"{k}: {v}" for k, v in counted.items())
        m.reasons.append(
            f"error rate {m.error_rate:.0%} ({failed} of {judged} measured requests failed: {kinds}) "
            f"exceeds {rules.max_error_rate:.0%}: no latency or throughput claim"
        )


def bursts_of(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per burst (rows of one burst share their release, ``t_scheduled``): its
    ``release``, ``size`` (requests), ``images`` (successful ones) and ``makespan`` (release
    to its last completion), in release order."""
    scheduled = rows.dropna(subset=["t_scheduled"])
    grouped = scheduled.groupby("t_scheduled")
    bursts = pd.DataFrame(
        {
            "size": grouped.size(),
            "images": grouped["ok"].sum().astype(int),
            "last_done": grouped["t_done"].max(),
        }
    )
    bursts["release"] = bursts.index.to_numpy(dtype=float)
    bursts["makespan"] = bursts["last_done"] - bursts["release"]
    return bursts.reset_index(drop=True)[["release", "size", "images", "makespan"]]


def _throughput(m: PointMetrics, rows: pd.DataFrame, w0: float, w1: float, rules: ValidityRules) -> None:
    """Throughput over the measured window and the stability rule on its thirds.

    Closed loop: successful completions per second of the window; stable when each third's
    completions stay within the bound of a third of the total (the split of n completions
    over three equal thirds is binomial by chance). Bursts (``collisions``): images per second
    of burst makespan, the drains between bursts being no serving time; the thirds are the
    first, middle and last third of the bursts, each expected to hold the total's share of
    makespan. Open loop (and soak): completions in each third, counted one median latency
    later so that a request counts in the third it arrived in, against the arrivals scheduled
    in it, whose count is Poisson: a server that falls behind, or drains a backlog, strays from
    them. The abandon scenario is overloaded on purpose and judged on its goodput: delivered
    images per third against a third of the total, as in closed loop.
    """
    if w1 <= w0:
        return
    if m.scenario == ScenarioName.COLLISIONS and rows["t_scheduled"].notna().any():
        _burst_throughput(m, rows, w0, w1, rules)
        return
    done_ok = rows.loc[rows["ok"].astype(bool), "t_done"].to_numpy(dtype=float)
    in_window = done_ok[(done_ok >= w0) & (done_ok <= w1)]
    m.throughput_rps = len(in_window) / (w1 - w0)
    edges = np.linspace(w0, w1, 4)
    if m.scenario in ARRIVAL_SCENARIOS and rows["t_scheduled"].notna().any():
        _open_loop_thirds(m, rows, edges, rules)
        return
    counts, _ = np.histogram(in_window, bins=edges)
    total = float(counts.sum())
    m.thirds_basis = "completions per third of the window, against a third of the total"
    if m.scenario in ARRIVAL_SCENARIOS:
        m.notes.append("open-loop rows carry no t_scheduled: thirds compared by completions only")
    third_s = np.full(3, (w1 - w0) / 3)
    _judge_thirds(m, counts, np.full(3, total / 3), third_s, rules, binomial_of=total, unit="completions")


def _burst_throughput(
    m: PointMetrics, rows: pd.DataFrame, w0: float, w1: float, rules: ValidityRules
) -> None:
    bursts = bursts_of(rows)
    bursts = bursts[(bursts["release"] >= w0) & (bursts["release"] <= w1)]
    span = float(bursts["makespan"].sum())
    if span <= 0:
        return
    m.throughput_rps = float(bursts["images"].sum()) / span
    m.thirds_basis = "images per second of burst makespan over thirds of the bursts, against the total's rate"
    if len(bursts) < 3:
        m.notes.append(f"stability not checked: {len(bursts)} bursts measured (three thirds need three)")
        return
    thirds = [bursts.iloc[part] for part in np.array_split(np.arange(len(bursts)), 3)]
    images = np.array([float(part["images"].sum()) for part in thirds])
    spans = np.array([float(part["makespan"].sum()) for part in thirds])
    expected = images.sum() * spans / spans.sum()
    _judge_thirds(m, images, expected, spans, rules, binomial_of=float(images.sum()), unit="images")


def _open_loop_thirds(m: PointMetrics, rows: pd.DataFrame, edges: np.ndarray, rules: ValidityRules) -> None:
    ok_rows = rows[rows["ok"].astype(bool)]
    starts = latency_start(ok_rows)
    in_window = ok_rows[(starts >= edges[0]) & (starts <= edges[-1])]
    shift = float(latency(in_window).median()) if not in_window.empty else 0.0
    shift = 0.0 if math.isnan(shift) else max(shift, 0.0)
    achieved, _ = np.histogram(ok_rows["t_done"].to_numpy(dtype=float), bins=edges + shift)
    offered, _ = np.histogram(rows["t_scheduled"].dropna().to_numpy(dtype=float), bins=edges)
    m.thirds_basis = (
        f"completions per third (counted one median latency, {shift * 1e3:.0f} ms, later) against the "
        "arrivals scheduled in it"
    )
    if (offered == 0).any():
        m.notes.append(
            "stability not checked: a third of the window had no scheduled arrival "
            f"(arrivals per third {'/'.join(str(int(c)) for c in offered)})"
        )
        return
    third_s = np.full(3, float(edges[1] - edges[0]))
    _judge_thirds(m, achieved.astype(float), offered.astype(float), third_s, rules, None, "completions")


def _judge_thirds(
    m: PointMetrics,
    counts: np.ndarray,
    expected: np.ndarray,
    seconds: np.ndarray,
    rules: ValidityRules,
    binomial_of: float | None,
    unit: str,
) -> None:
    """Each third's count against its expected count: allowed to stray by the larger of
    ``max_thirds_spread`` of it and ``stability_sigmas`` standard deviations of chance —
    binomial where a fixed total (``binomial_of``) is split over the thirds, Poisson where the
    expected count is itself a count of random arrivals."""
    if binomial_of is not None:
        share = expected / binomial_of if binomial_of > 0 else np.full(3, 1 / 3)
        sigma = np.sqrt(binomial_of * share * (1 - share))
        chance = "binomial"
    else:
        sigma = np.sqrt(expected)
        chance = "Poisson"
    allowed = np.maximum(rules.max_thirds_spread * expected, rules.stability_sigmas * sigma)
    m.thirds_rps = [float(c / s) for c, s in zip(counts, seconds, strict=True)]
    m.thirds_expected_rps = [float(e / s) for e, s in zip(expected, seconds, strict=True)]
    m.thirds_allowed_rps = [float(a / s) for a, s in zip(allowed, seconds, strict=True)]
    if not (expected > 0).all():
        return
    deviation = np.abs(counts - expected)
    m.thirds_spread = float((deviation / expected).max())
    worst = int(np.argmax(deviation / allowed))
    if deviation[worst] > allowed[worst]:
        behind = counts[worst] < expected[worst]
        what = "fell behind" if behind else "ran ahead (draining a backlog or catching up)"
        m.reasons.append(
            f"unstable: the {('first', 'middle', 'last')[worst]} third {what}: {counts[worst]:.0f} {unit} "
            f"where {expected[worst]:.1f} were expected, off by more than the allowed ±{allowed[worst]:.1f} "
            f"(the larger of {rules.max_thirds_spread:.0%} and {rules.stability_sigmas:g} {chance} "
            f"standard deviations; {m.thirds_basis})"
        )


def _latencies(m: PointMetrics, measured: pd.DataFrame, rules: ValidityRules) -> None:
    values = latency_sample(measured)
    m.n_latency = len(values)
    if values.empty:
        return
    m.p50_s = percentile(values, 0.50, 1)
    m.p90_s = percentile(values, 0.90, rules.min_samples_p90)
    m.p99_s = percentile(values, 0.99, rules.min_samples_p99)
    m.p999_s = percentile(values, 0.999, rules.min_samples_p999)
    m.max_s = float(values.max())
    m.mean_latency_s = float(values.mean())
    missing = [
        name
        for name, floor in (
            ("p90", rules.min_samples_p90),
            ("p99", rules.min_samples_p99),
            ("p99.9", rules.min_samples_p999),
        )
        if m.n_latency < floor
    ]
    if missing:
        m.notes.append(
            f"{', '.join(missing)} not shown for this trial: {m.n_latency} samples (below the floor)"
        )


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


def _in_flight(m: PointMetrics, rows: pd.DataFrame, w0: float, w1: float, rules: ValidityRules) -> None:
    """Little's law's L against the load the point was configured to apply.

    Closed loop: the client's time-averaged requests in flight over the measured window
    against the configured users (each user always has one request out). Bursts: the
    requests in flight at each measured burst's release against the burst size (the burst
    is released once the previous one drained). Rows missing from the table pull it below;
    completions stamped too late push it above.
    """
    if w1 <= w0 or not m.users:
        return
    starts = latency_start(rows).to_numpy(dtype=float)
    ends = rows["t_done"].to_numpy(dtype=float)
    if m.scenario == ScenarioName.COLLISIONS:
        releases = bursts_of(rows)["release"].to_numpy(dtype=float)
        releases = releases[(releases >= w0) & (releases <= w1)]
        if len(releases) == 0:
            return
        open_at = [int(((starts <= t) & (ends > t)).sum()) for t in releases]
        m.client_in_flight = float(np.mean(open_at))
        what = f"requests in flight at each burst's release (mean over {len(releases)} bursts)"
        configured = f"a burst of {m.users} was configured"
    elif m.scenario in CLOSED_LOOP_SCENARIOS:
        m.client_in_flight = mean_in_flight(starts, ends, w0, w1)
        what = "requests in flight on average over the measured window"
        configured = f"{m.users} users were configured"
    else:
        return
    m.configured_in_flight = m.users
    m.in_flight_disagreement = disagreement(m.client_in_flight, float(m.users))
    if m.in_flight_disagreement > rules.max_littles_law_disagreement:
        m.reasons.append(
            f"the client kept {m.client_in_flight:.2f} {what} where {configured} "
            f"(off by {m.in_flight_disagreement:.0%}, limit {rules.max_littles_law_disagreement:.0%}): "
            "rows are missing from the table, or their times are wrong"
        )


def _ledger_completions(
    m: PointMetrics,
    rows: pd.DataFrame,
    ledger: pd.DataFrame | None,
    w0: float,
    w1: float,
    rules: ValidityRules,
) -> None:
    """The client's successful completions per second against the server ledger's (its own
    count of requests answered with 200, by ``t_send``) over the same measured window."""
    if w1 <= w0:
        return
    own = None if ledger is None or ledger.empty else ledger[ledger["server"] == m.server]
    if own is None or own.empty or "t_send" not in own:
        m.notes.append("client completions not checked against the server: no ledger.jsonl rows for it")
        return
    done_ok = rows.loc[rows["ok"].astype(bool), "t_done"]
    sent = pd.to_numeric(own["t_send"], errors="coerce")
    answered = pd.to_numeric(own.get("status", pd.Series(200, index=own.index)), errors="coerce") == 200
    window = w1 - w0
    m.client_completion_rps = float(done_ok.between(w0, w1).sum() / window)
    m.ledger_completion_rps = float((answered & sent.between(w0, w1)).sum() / window)
    m.completion_disagreement = disagreement(m.client_completion_rps, m.ledger_completion_rps)
    if m.completion_disagreement > rules.max_littles_law_disagreement:
        m.reasons.append(
            f"the client recorded {m.client_completion_rps:.2f} completions/s, the server's ledger "
            f"{m.ledger_completion_rps:.2f}/s over the same window (off by {m.completion_disagreement:.0%}, "
            f"limit {rules.max_littles_law_disagreement:.0%}): rows are missing from the table, or stamped "
            "wrongly"
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
    if m.scenario in SCHEDULED_SCENARIOS:
        scale_s = 1.0 / point.rate if point.rate else (w1 - w0) / len(scheduled)  # the mean gap
        what, why = "open-loop", "(the generator could not keep its schedule)"
    elif m.scenario == ScenarioName.COLLISIONS:
        scale_s = float(bursts_of(scheduled)["makespan"].median())
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
    """Single-stream GPU time per server: the mean GPU median of its VALID `latency` trials
    (all clients), else of its VALID closed-loop users=1 trials; no baseline without either
    (an INVALID or a loaded point is no baseline)."""
    baselines: dict[str, float] = {}
    for server in {m.server for m in results}:
        own = [m for m in results if m.server == server and m.valid and m.gpu_median_s is not None]
        for chosen in (
            [m for m in own if m.scenario == BASELINE_SCENARIO],
            [m for m in own if is_single_stream(m)],
        ):
            if chosen:
                baselines[server] = float(np.mean([m.gpu_median_s for m in chosen]))
                break
    return baselines


def metrics_frame(results: Iterable[PointMetrics]) -> pd.DataFrame:
    """The per-trial metrics as one DataFrame (lists joined to text for display)."""
    records = []
    for m in results:
        record = asdict(m)
        record["reasons"] = "; ".join(m.reasons)
        record["notes"] = "; ".join(m.notes)
        record["errors"] = ", ".join(f"{k}: {v}" for k, v in m.errors.items())
        records.append(record)
    return pd.DataFrame.from_records(records)


def trial_rows(table: pd.DataFrame, m: PointMetrics) -> pd.DataFrame:
    """Every row of a trial (``table`` is its run's), warm-up included."""
    return table[
        (table["server"] == m.server)
        & (table["client"] == m.client)
        & (table["scenario"] == m.scenario)
        & (table["load_point"] == m.load_point)
        & (table["trial"] == m.trial)
    ]


def measured_rows(table: pd.DataFrame, m: PointMetrics) -> pd.DataFrame:
    """The rows of a trial (``table`` is its run's) that started inside its measured window."""
    rows = trial_rows(table, m)
    starts = latency_start(rows)
    return rows[(starts >= m.window_start) & (starts <= m.window_end)]
