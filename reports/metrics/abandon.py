"""The abandon scenario's headline figures per server: goodput, and the GPU time spent on answers
nobody received, each with its 95% interval.

- **Goodput**: images delivered to a client still waiting, per second of the measured window:
  the point's throughput (successful completions only; an abandoned request is no success)
  with its interval, as ``reports.metrics.summaries`` computes it.
- **Wasted GPU seconds**: over each trial's whole arrival stream (the same stream for every
  server within a trial), the GPU time of the requests whose client did not receive the answer
  (it gave up, timed out or failed), from the ledger's ``t_gpu_start``/``t_gpu_end`` joined to
  each row. Where GPU calls overlapped (a server without a lock) each instant is shared among
  the calls running then (``rows.shared_gpu_seconds``): the seconds are device time, and the
  wasted share is of the device's busy time in that trial.
- **Intervals**: the t-interval of the per-trial values for N ≥ 2 trials; for one trial a
  bootstrap over its requests (of their wasted seconds, summed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports.metrics.intervals import Interval, bootstrap_interval, mean_of_rows, trial_interval
from reports.metrics.points import LoadPoint, abandoned, trial_rows
from reports.metrics.rows import shared_gpu_seconds
from reports.metrics.summaries import THROUGHPUT, PointSummary
from reports.schema import PointRecord, ScenarioName


@dataclass
class WastedGpu:
    """One trial's device time: per request its share, and which requests delivered nothing."""

    shares: np.ndarray  # device seconds per request of the trial (0 where its GPU stage never ran)
    undelivered: np.ndarray  # bool per request: its client did not receive the answer

    @property
    def wasted_s(self) -> float:
        return float(self.shares[self.undelivered].sum())

    @property
    def busy_s(self) -> float:
        return float(self.shares.sum())


def wasted_gpu(rows: pd.DataFrame) -> WastedGpu:
    """The device time of one trial's requests (one server process), shared where they overlap."""
    shares = np.zeros(len(rows))
    ran = (rows["t_gpu_start"].notna() & rows["t_gpu_end"].notna()).to_numpy()
    if ran.any():
        shares[ran] = shared_gpu_seconds(
            rows.loc[ran, "t_gpu_start"].to_numpy(dtype=float),
            rows.loc[ran, "t_gpu_end"].to_numpy(dtype=float),
        )
    return WastedGpu(shares, ~rows["ok"].astype(bool).to_numpy())


@dataclass
class AbandonSummary(LoadPoint):
    """One abandon point of one server over its trials."""

    n_trials: int = 0
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    give_up_s: float | None = None  # the impatient clients' timeout
    give_up_share: float | None = None  # the share of the arrivals that had it
    n_requests: int = 0  # every trial's arrivals
    gave_up: float | None = None  # the share of the arrivals that gave up (pooled)
    ran_for_nobody: int = 0  # abandoned requests whose GPU stage ran all the same (pooled)
    goodput: Interval | None = None  # images/s delivered to clients still waiting
    wasted_gpu_s: Interval | None = None  # device seconds spent on answers nobody received
    wasted_share: float | None = None  # of the device's busy time, mean over the trials


def abandon_summaries(
    table: pd.DataFrame, summaries: Sequence[PointSummary], points: Sequence[PointRecord]
) -> list[AbandonSummary]:
    """One summary per abandon point (``summaries`` and ``points`` are the run's)."""
    recorded = {(p.server, p.client, p.scenario, p.load_point): p for p in points}
    found = []
    for s in summaries:
        if s.scenario != ScenarioName.ABANDON:
            continue
        trials = [trial_rows(table, m) for m in s.trials]
        device = [wasted_gpu(rows) for rows in trials]
        per_trial = [d.wasted_s for d in device]
        if len(device) >= 2:
            wasted = trial_interval(per_trial)
        elif device and len(device[0].shares) >= 2:
            (one,) = device
            spent = np.where(one.undelivered, one.shares, 0.0)
            mean = bootstrap_interval(spent, mean_of_rows)
            wasted = None if mean is None else mean.scaled(len(spent))
        else:
            wasted = None
        rows = pd.concat(trials) if trials else table.iloc[0:0]
        gone = abandoned(rows)
        point = recorded.get(s.key)
        of_busy = [d.wasted_s / d.busy_s for d in device if d.busy_s > 0]
        found.append(
            AbandonSummary(
                **s.identity(),
                n_trials=s.n_trials,
                verdict=s.verdict,
                reasons=list(s.reasons),
                give_up_s=None if point is None else point.give_up_s,
                give_up_share=None if point is None else point.give_up_share,
                n_requests=len(rows),
                gave_up=float(gone.mean()) if len(rows) else None,
                ran_for_nobody=int((gone & rows["t_gpu_start"].notna()).sum()),
                goodput=s.intervals.get(THROUGHPUT),
                wasted_gpu_s=wasted,
                wasted_share=float(np.mean(of_busy)) if of_busy else None,
            )
        )
    return found
