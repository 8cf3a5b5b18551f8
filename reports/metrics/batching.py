"""How a batched server batched: per load point, the GPU calls by batch size, and the point's
throughput and p90 against its mean batch size.

Counted from the measured rows of each trial (the warm-up cut as every other statistic), by
*GPU call*: the ledger gives each call a ``batch_id`` (per server process) and every request of
the call its ``batch_size``, so a batch of eight is one call of size 8, not eight. A call whose
requests straddle the window's edge is counted where any of them is measured, at the size the
ledger recorded. Only points with a ledger ``batch_size`` are listed; a server that never
formed a batch above 1 shows calls of size 1 (what batching gave it under that load).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports.metrics.intervals import Interval
from reports.metrics.points import LoadPoint, measured_rows
from reports.metrics.summaries import THROUGHPUT, PointSummary


@dataclass
class BatchPoint(LoadPoint):
    """One load point of one server over its trials: its GPU calls by batch size."""

    calls_by_size: dict[int, int] = field(default_factory=dict)  # batch size -> GPU calls
    verdict: str = ""
    throughput: Interval | None = None  # images/s (the point's summary)
    p90: Interval | None = None  # s, where the pooled sample shows it

    @property
    def calls(self) -> int:
        return sum(self.calls_by_size.values())

    @property
    def requests(self) -> int:
        return sum(size * count for size, count in self.calls_by_size.items())

    @property
    def mean_batch(self) -> float | None:
        """Requests per GPU call."""
        return self.requests / self.calls if self.calls else None

    @property
    def batched(self) -> bool:
        """Whether any call of the point held more than one request."""
        return any(size > 1 for size in self.calls_by_size)


def calls_by_size(rows: pd.DataFrame) -> dict[int, int]:
    """GPU calls by batch size among ``rows`` (rows without a ledger batch size are left out)."""
    known = rows.dropna(subset=["batch_size", "batch_id"])
    if known.empty:
        return {}
    calls = known.groupby(["run_id", "server", "batch_id"], sort=False)["batch_size"].first()
    sizes, counts = np.unique(calls.to_numpy(dtype=int), return_counts=True)
    return {int(size): int(count) for size, count in zip(sizes, counts, strict=True)}


def batch_points(table: pd.DataFrame, summaries: Sequence[PointSummary]) -> list[BatchPoint]:
    """Every point whose server recorded batch sizes, when any call of the run held more than one
    request (a run with no batching has no batching section)."""
    found: list[BatchPoint] = []
    for summary in summaries:
        counts: dict[int, int] = {}
        for trial in summary.trials:
            for size, count in calls_by_size(measured_rows(table, trial)).items():
                counts[size] = counts.get(size, 0) + count
        if not counts:
            continue
        found.append(
            BatchPoint(
                **summary.identity(),
                calls_by_size=dict(sorted(counts.items())),
                verdict=summary.verdict,
                throughput=summary.intervals.get(THROUGHPUT),
                p90=summary.intervals.get("p90"),
            )
        )
    return found if any(point.batched for point in found) else []
