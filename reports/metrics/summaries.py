"""Each load point over its trials: one summary with a 95% interval per headline statistic.

A run measures every point in N trials (``gvf run --repeat N``); ``point_metrics`` judges each
trial on its own. ``summarise`` pools them per (server, client, scenario, load point):

- **Statistics.** Throughput, p50, p90 and p99, and the mean protocol and wait times, each an
  estimate with its 95% interval and the method's name (``reports.metrics.intervals``): the
  t-interval of the per-trial values for N ≥ 2, a bootstrap over the one trial's requests (its
  completion gaps, or its bursts, for throughput) for N = 1.
- **Percentile floors on the pooled sample.** A percentile is shown where the latency samples
  of all trials together reach its floor (p90 ≥ 64, ...): three trials of 30 requests give a
  p90, each trial's own value entering the interval.
- **Validity.** The summary is VALID only if every trial is VALID; otherwise its reasons are
  the failing trials' reasons, each named by its trial. A trial that fails a rule means the
  configuration, not just that trial, produced unusable data (a saturated generator, a server
  that drifts, a backlog): dropping it and keeping the others would pick the evidence.

``compare`` sets two summaries side by side, trial t of one against trial t of the other
(they ran interleaved): a ratio for throughput, a difference for the others. Given the pair's
``model_speed_factors`` each side is first brought to the pair's common model speed: where the
model runs on a CPU, the same model call on the same input takes ±20 % from one minute or one
process to the next on a shared machine (measured: per-trial medians of one u2netp call
290–425 ms within one run), far more than what a framework adds around it; a framework
comparison must not credit one server with the machine's speed while it ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports.metrics.intervals import (
    BOOTSTRAP_BURSTS,
    BOOTSTRAP_GAPS,
    Interval,
    bootstrap_difference_interval,
    bootstrap_interval,
    bootstrap_ratio_interval,
    completion_gaps,
    mean_of_rows,
    paired_difference_interval,
    paired_ratio_interval,
    quantile_of_rows,
    rate_of_gaps,
    seconds_per_event_interval,
    trial_interval,
)
from reports.metrics.points import (
    LoadPoint,
    PointMetrics,
    bursts_of,
    latency_sample,
    measured_rows,
    trial_rows,
)
from reports.metrics.rows import COMPONENTS, decomposition
from reports.metrics.rules import BASELINE_SCENARIO, INVALID, VALID, ValidityRules
from reports.schema import ScenarioName

THROUGHPUT = "throughput"
QUANTILES: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p99": 0.99}
MEANS: tuple[str, ...] = ("protocol", "wait")  # mean decomposition components
STATISTICS: tuple[str, ...] = (THROUGHPUT, *QUANTILES, *MEANS)


@dataclass(frozen=True)
class TrialSample:
    """What one trial's intervals and one-trial comparisons resample."""

    trial: int
    latency: np.ndarray  # the latency sample (successful and timed-out measured requests), s
    components: dict[str, np.ndarray]  # mean-able decomposition components per decomposed row, s
    rate_seconds: np.ndarray  # completion gaps, or each burst's makespan per image, s
    rate_method: str  # BOOTSTRAP_GAPS or BOOTSTRAP_BURSTS
    model_s: float | None = None  # median model call (GPU stage), s; None where calls were batched


@dataclass
class PointSummary(LoadPoint):
    """One (server, client, scenario, load point) over its trials."""

    trials: list[PointMetrics] = field(default_factory=list)
    samples: dict[int, TrialSample] = field(default_factory=dict)
    verdict: str = INVALID
    reasons: list[str] = field(default_factory=list)  # each failing trial's reasons, named by trial
    notes: list[str] = field(default_factory=list)
    n_latency: int = 0  # pooled latency sample over the trials
    n_measured: int = 0
    error_rate: float | None = None  # pooled failed / measured
    intervals: dict[str, Interval] = field(default_factory=dict)  # statistic -> interval (absent: not shown)

    @property
    def valid(self) -> bool:
        return self.verdict == VALID

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    def estimate(self, statistic: str) -> float | None:
        """The statistic's estimate, None where it is not shown."""
        interval = self.intervals.get(statistic)
        return None if interval is None else interval.estimate

    def mean_over_trials(self, attribute: str) -> float | None:
        """A per-trial metric (a ``PointMetrics`` attribute) averaged over the trials that have it."""
        values = [getattr(m, attribute) for m in self.trials if getattr(m, attribute) is not None]
        return float(np.mean(values)) if values else None

    def per_trial(self, statistic: str) -> dict[int, float]:
        """The statistic in each trial (trial number -> value), where that trial has one."""
        values: dict[int, float] = {}
        for m in self.trials:
            value = _trial_value(m, self.samples.get(m.trial), statistic)
            if value is not None and np.isfinite(value):
                values[m.trial] = value
        return values


def _trial_value(m: PointMetrics, sample: TrialSample | None, statistic: str) -> float | None:
    if statistic == THROUGHPUT:
        return m.throughput_rps if m.window_s > 0 else None
    if sample is None:
        return None
    if statistic in QUANTILES:
        values = sample.latency
        return float(np.quantile(values, QUANTILES[statistic])) if len(values) else None
    values = sample.components.get(statistic, np.array([]))
    return float(values.mean()) if len(values) else None


def trial_sample(table: pd.DataFrame, m: PointMetrics) -> TrialSample:
    """The resampling units of one trial: its latency sample, its decomposed rows and the
    seconds behind its throughput."""
    measured = measured_rows(table, m)
    components = decomposition(measured[measured["ok"].astype(bool)]).dropna()
    if m.scenario == ScenarioName.COLLISIONS and measured["t_scheduled"].notna().any():
        bursts = bursts_of(measured)
        bursts = bursts[bursts["images"] > 0]
        rate_seconds = (bursts["makespan"] / bursts["images"]).to_numpy(dtype=float)
        method = BOOTSTRAP_BURSTS
    else:
        rows = trial_rows(table, m)
        done = rows.loc[rows["ok"].astype(bool), "t_done"]
        rate_seconds = completion_gaps(done[done.between(m.window_start, m.window_end)])
        method = BOOTSTRAP_GAPS
    return TrialSample(
        trial=m.trial,
        latency=latency_sample(measured).to_numpy(dtype=float),
        components={name: components[name].to_numpy(dtype=float) for name in COMPONENTS if name in MEANS},
        rate_seconds=rate_seconds,
        rate_method=method,
        model_s=_model_seconds(measured[measured["ok"].astype(bool)]),
    )


def _model_seconds(rows: pd.DataFrame) -> float | None:
    """The median model call of requests that each had a call of their own; None where any
    shared one (a batch's call time is no one image's) or the ledger has no GPU spans."""
    if "batch_size" in rows and (pd.to_numeric(rows["batch_size"], errors="coerce") > 1).any():
        return None
    spans = (rows["t_gpu_end"] - rows["t_gpu_start"]).dropna()
    spans = spans[spans > 0]
    return float(spans.median()) if len(spans) else None


def _floor(statistic: str, rules: ValidityRules) -> int:
    return {"p90": rules.min_samples_p90, "p99": rules.min_samples_p99}.get(statistic, 2)


def _interval(summary: PointSummary, statistic: str, rules: ValidityRules) -> Interval | None:
    if summary.n_trials >= 2:
        return trial_interval(list(summary.per_trial(statistic).values()))
    (m,) = summary.trials
    sample = summary.samples.get(m.trial)
    if sample is None:
        return None
    if statistic == THROUGHPUT:
        return seconds_per_event_interval(sample.rate_seconds, m.throughput_rps, sample.rate_method)
    if statistic in QUANTILES:
        return bootstrap_interval(
            sample.latency, quantile_of_rows(QUANTILES[statistic]), _floor(statistic, rules)
        )
    return bootstrap_interval(sample.components.get(statistic, np.array([])), mean_of_rows)


def summarise(
    table: pd.DataFrame, results: Sequence[PointMetrics], rules: ValidityRules, repeat: int = 1
) -> list[PointSummary]:
    """One summary per point of ``results`` (every trial of one run), in first-seen order.

    ``repeat`` is the number of trials the run asked for: a point with fewer says so.
    """
    grouped: dict[tuple[str, str, str, str], list[PointMetrics]] = {}
    for m in results:
        grouped.setdefault(m.key, []).append(m)
    summaries = []
    for trials in grouped.values():
        trials = sorted(trials, key=lambda m: m.trial)
        summaries.append(_summary(table, trials, rules, repeat))
    return summaries


def _summary(
    table: pd.DataFrame, trials: list[PointMetrics], rules: ValidityRules, repeat: int
) -> PointSummary:
    summary = PointSummary(
        **trials[0].identity(),
        trials=trials,
        samples={m.trial: trial_sample(table, m) for m in trials if m.n_rows},
    )
    summary.reasons = [f"trial {m.trial}: {reason}" for m in trials for reason in m.reasons]
    summary.verdict = VALID if trials and not summary.reasons else INVALID
    summary.n_latency = sum(len(s.latency) for s in summary.samples.values())
    summary.n_measured = sum(m.n_measured for m in trials)
    if summary.n_measured:
        summary.error_rate = sum(m.n_measured - m.n_ok for m in trials) / summary.n_measured
    if len(trials) < repeat:
        summary.notes.append(f"{len(trials)} of the run's {repeat} trials of this point ran")
    if len(trials) == 1 and repeat > 1:
        summary.notes.append("one trial: its intervals hold only the sampling noise within it")
    for statistic in STATISTICS:
        floor = _floor(statistic, rules)
        if statistic in QUANTILES and summary.n_latency < floor:
            if statistic == "p90":
                summary.notes.append(
                    f"p90 not shown: {summary.n_latency} pooled samples over {len(trials)} trial(s) "
                    f"(floor {floor})"
                )
            continue
        interval = _interval(summary, statistic, rules)
        if interval is not None:
            summary.intervals[statistic] = interval
    return summary


# per trial, the factor that brings each side (a, b) to the pair's common model speed
SpeedFactors = tuple[dict[int, float], dict[int, float]]


def model_speed_factors(a: PointSummary, b: PointSummary) -> SpeedFactors | None:
    """Per trial both sides ran, what brings each side to the pair's common model speed: the
    geometric mean of the two median model calls over the side's own (a time statistic is
    multiplied by it, a throughput divided). None unless every such trial has both model times."""
    trials = sorted(set(a.samples) & set(b.samples))
    model_a, model_b = _model_times(a), _model_times(b)
    if not trials or any(t not in model_a or t not in model_b for t in trials):
        return None
    common = {t: float(np.sqrt(model_a[t] * model_b[t])) for t in trials}
    return {t: common[t] / model_a[t] for t in trials}, {t: common[t] / model_b[t] for t in trials}


def model_time_ratio(a: PointSummary, b: PointSummary) -> Interval | None:
    """a's median model call over b's, paired by trial (one trial each: None)."""
    if a.n_trials < 2 or b.n_trials < 2:
        return None
    return paired_ratio_interval(_model_times(a), _model_times(b))


def _model_times(summary: PointSummary) -> dict[int, float]:
    return {t: s.model_s for t, s in summary.samples.items() if s.model_s is not None}


def _scaled(values: dict[int, float], factors: dict[int, float], statistic: str) -> dict[int, float]:
    if statistic == THROUGHPUT:
        return {t: v / factors[t] for t, v in values.items() if t in factors}
    return {t: v * factors[t] for t, v in values.items() if t in factors}


def compare(
    a: PointSummary, b: PointSummary, statistic: str, speed: SpeedFactors | None = None
) -> Interval | None:
    """``a`` against ``b``: the throughput ratio a / b, or the difference a − b of another
    statistic, with its 95% interval. Trials are paired by number where both sides have at
    least two in common; with one trial each, both samples are bootstrapped; otherwise (or
    where either side does not show the statistic) there is no comparison.

    ``speed``: ``model_speed_factors(a, b)``, to bring each side's values to the pair's common
    model speed first (a whole latency is scaled, its few percent outside the model call
    included: a second-order error); None compares them as measured."""
    if statistic not in a.intervals or statistic not in b.intervals:
        return None
    if a.n_trials >= 2 and b.n_trials >= 2:
        pair = paired_ratio_interval if statistic == THROUGHPUT else paired_difference_interval
        a_values, b_values = a.per_trial(statistic), b.per_trial(statistic)
        if speed is not None:
            a_values, b_values = (
                _scaled(a_values, speed[0], statistic),
                _scaled(b_values, speed[1], statistic),
            )
        return pair(a_values, b_values)
    if a.n_trials != 1 or b.n_trials != 1:
        return None
    (sample_a,), (sample_b,) = a.samples.values(), b.samples.values()
    # one trial each: every time in a sample scales alike (seconds per image included)
    scale_a, scale_b = (speed[0][sample_a.trial], speed[1][sample_b.trial]) if speed else (1.0, 1.0)
    if statistic == THROUGHPUT:
        return bootstrap_ratio_interval(
            sample_a.rate_seconds * scale_a,
            sample_b.rate_seconds * scale_b,
            rate_of_gaps,
            sample_a.rate_method,
        )
    if statistic in QUANTILES:
        return bootstrap_difference_interval(
            sample_a.latency * scale_a, sample_b.latency * scale_b, quantile_of_rows(QUANTILES[statistic])
        )
    return bootstrap_difference_interval(
        sample_a.components.get(statistic, np.array([])) * scale_a,
        sample_b.components.get(statistic, np.array([])) * scale_b,
        mean_of_rows,
    )


def single_stream(summaries: Sequence[PointSummary], server: str, client: str) -> PointSummary | None:
    """The VALID single-stream point of a server and client: its `latency` point, else its
    closed-loop sweep's users=1 point; None where neither is VALID (an INVALID or a loaded
    point is no baseline)."""
    own = [s for s in summaries if (s.server, s.client) == (server, client) and s.valid]
    for scenario in (BASELINE_SCENARIO, ScenarioName.THROUGHPUT):
        found = [s for s in own if s.scenario == scenario and s.users == 1]
        if found:
            return found[0]
    return None


def summaries_frame(summaries: Sequence[PointSummary]) -> pd.DataFrame:
    """One row per point: identity, verdict, pooled counts and each statistic's estimate,
    interval and method (the summary CSV beside a report)."""
    records = []
    for s in summaries:
        record: dict[str, object] = {
            "run_id": s.run_id,
            "server": s.server,
            "client": s.client,
            "scenario": s.scenario,
            "load_point": s.load_point,
            "load": s.load,
            "trials": s.n_trials,
            "verdict": s.verdict,
            "n_measured": s.n_measured,
            "n_latency": s.n_latency,
            "error_rate": s.error_rate,
        }
        for statistic in STATISTICS:
            interval = s.intervals.get(statistic)
            record[statistic] = None if interval is None else interval.estimate
            record[f"{statistic}_low"] = None if interval is None else interval.low
            record[f"{statistic}_high"] = None if interval is None else interval.high
            record[f"{statistic}_method"] = "" if interval is None else interval.method
        record["reasons"] = "; ".join(s.reasons)
        record["notes"] = "; ".join(s.notes)
        records.append(record)
    return pd.DataFrame.from_records(records)
