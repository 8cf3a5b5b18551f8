"""Goodput under a latency target, the Pareto frontier of throughput against p90, and the
goodput verdict between two servers — what ``gvf tune`` scores its candidates by and what its
report states.

- **Goodput** of a server in a run: the highest throughput among its closed-loop `throughput`
  points that are VALID (every trial), show p90 (the pooled sample meets its floor) and whose p90
  estimate is within the SLO; the point it was reached at and both intervals come with it. No
  such point: no goodput (a score of 0: the configuration cannot meet the target at any load
  measured).
- **Frontier**: a point is on it when no other point has at least its throughput and at most its
  p90 with one of the two strictly better.
- **Verdict**: FastAPI's goodput over gradio's, each at its own goodput load, trial t of one
  paired with trial t of the other (they ran interleaved in one run): the t-interval of the
  per-trial log ratios (``intervals.paired_ratio_interval``). A difference is called only when
  the interval excludes 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reports.metrics.intervals import Interval, paired_ratio_interval
from reports.metrics.summaries import THROUGHPUT, PointSummary
from reports.schema import ScenarioName


@dataclass(frozen=True)
class Goodput:
    """A server's best VALID throughput with p90 within the SLO, in one run."""

    server: str
    slo_s: float
    point: PointSummary | None  # the point it was reached at; None: no point met the SLO

    @property
    def score(self) -> float:
        """Images/s within the SLO (0 where no point met it): what the search maximises."""
        return self.throughput.estimate if self.throughput is not None else 0.0

    @property
    def throughput(self) -> Interval | None:
        return None if self.point is None else self.point.intervals.get(THROUGHPUT)

    @property
    def p90(self) -> Interval | None:
        return None if self.point is None else self.point.intervals.get("p90")

    @property
    def users(self) -> int | None:
        return None if self.point is None else self.point.users


def within_slo(summary: PointSummary, slo_s: float) -> bool:
    """A VALID point whose pooled p90 is shown and within ``slo_s``."""
    p90 = summary.estimate("p90")
    return summary.valid and p90 is not None and p90 <= slo_s and summary.estimate(THROUGHPUT) is not None


def goodput(summaries: Sequence[PointSummary], server: str, slo_s: float) -> Goodput:
    """``server``'s goodput among ``summaries`` (one run's closed-loop throughput points)."""
    eligible = [
        s
        for s in summaries
        if s.server == server and s.scenario == ScenarioName.THROUGHPUT and within_slo(s, slo_s)
    ]
    best = max(eligible, key=lambda s: s.estimate(THROUGHPUT) or 0.0, default=None)
    return Goodput(server, slo_s, best)


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (throughput, p90) points no other point dominates, by throughput."""
    frontier = []
    for i, (rate, p90) in enumerate(points):
        dominated = any(
            other_rate >= rate and other_p90 <= p90 and (other_rate > rate or other_p90 < p90)
            for j, (other_rate, other_p90) in enumerate(points)
            if j != i
        )
        if not dominated:
            frontier.append(i)
    return sorted(frontier, key=lambda i: points[i][0])


@dataclass(frozen=True)
class GoodputVerdict:
    """FastAPI's goodput against gradio's, from one run where both ran interleaved."""

    fastapi: Goodput
    gradio: Goodput
    ratio: Interval | None  # fastapi / gradio, paired over trials

    def sentence(self) -> str:
        if self.fastapi.point is None or self.gradio.point is None:
            missing = " and ".join(g.server for g in (self.fastapi, self.gradio) if g.point is None)
            return f"no comparison: {missing} met the SLO at no load measured"
        if self.ratio is None:
            return "no comparison: fewer than two paired trials"
        ci = f"{self.ratio.estimate:.2f}× (95% CI {self.ratio.low:.2f}–{self.ratio.high:.2f})"
        if not self.ratio.excludes(1.0):
            return f"no measurable difference: FastAPI / gradio goodput {ci}"
        leader = "FastAPI" if self.ratio.estimate > 1 else "gradio.Server"
        return f"{leader} delivers more images/s within the SLO: FastAPI / gradio goodput {ci}"


def goodput_verdict(
    summaries: Sequence[PointSummary], slo_s: float, fastapi: str = "fastapi", gradio: str = "gradio"
) -> GoodputVerdict:
    """The two servers' goodput in one run and their paired ratio."""
    a, b = goodput(summaries, fastapi, slo_s), goodput(summaries, gradio, slo_s)
    ratio = None
    if a.point is not None and b.point is not None:
        ratio = paired_ratio_interval(a.point.per_trial(THROUGHPUT), b.point.per_trial(THROUGHPUT))
    return GoodputVerdict(a, b, ratio)
