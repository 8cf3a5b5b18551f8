"""reports.metrics.tune with known answers: goodput is the best VALID throughput within the SLO,
the Pareto frontier of (throughput, p90), and the paired goodput verdict."""

from __future__ import annotations

from reports.metrics.intervals import Interval
from reports.metrics.rules import INVALID, VALID
from reports.metrics.summaries import THROUGHPUT, PointSummary
from reports.metrics.tune import goodput, goodput_verdict, pareto_frontier
from reports.schema import ScenarioName
from tests.helpers.reports_tables import sweep_point


def _point(server: str, users: int, rates: list[float], p90: float, verdict: str = VALID) -> PointSummary:
    """A throughput point over len(rates) trials, trial t at rates[t - 1] images/s."""
    mean = sum(rates) / len(rates)
    return PointSummary(
        "r",
        server,
        server,
        ScenarioName.THROUGHPUT,
        f"users={users}",
        users,
        None,
        float(users),
        trials=[
            sweep_point(users, p90, server=server, trial=t, throughput_rps=rate, window_s=10.0)
            for t, rate in enumerate(rates, start=1)
        ],
        verdict=verdict,
        intervals={
            THROUGHPUT: Interval(mean, mean * 0.9, mean * 1.1, "test", len(rates)),
            "p90": Interval(p90, p90 * 0.9, p90 * 1.1, "test", len(rates)),
        },
    )


def test_goodput_is_the_best_valid_throughput_within_the_slo() -> None:
    points = [
        _point("fastapi", 1, [10.0, 10.0], 0.10),
        _point("fastapi", 2, [18.0, 18.0], 0.15),
        _point("fastapi", 4, [30.0, 30.0], 0.25),  # over the SLO
        _point("fastapi", 3, [40.0, 40.0], 0.12, verdict=INVALID),  # not evidence
        _point("gradio", 8, [50.0, 50.0], 0.10),  # another server
    ]
    found = goodput(points, "fastapi", slo_s=0.2)
    assert found.users == 2 and found.score == 18.0
    nothing = goodput(points, "fastapi", slo_s=0.05)
    assert nothing.point is None and nothing.score == 0.0


def test_pareto_frontier_keeps_the_points_nothing_dominates() -> None:
    points = [(10.0, 0.10), (18.0, 0.15), (15.0, 0.20), (30.0, 0.25), (30.0, 0.30), (5.0, 0.10)]
    # (15, .20) is beaten by (18, .15); (30, .30) by (30, .25); (5, .10) by (10, .10)
    assert pareto_frontier(points) == [0, 1, 3]


def test_the_goodput_verdict_pairs_trials_and_calls_a_difference_only_outside_its_interval() -> None:
    clear = goodput_verdict(
        [_point("fastapi", 2, [20.0, 21.0, 19.0], 0.1), _point("gradio", 1, [10.0, 10.4, 9.7], 0.1)], 0.2
    )
    assert clear.ratio is not None and clear.ratio.excludes(1.0)
    assert clear.sentence().startswith(
        "FastAPI delivers more images/s within the SLO: FastAPI / gradio goodput 1.99×"
    )
    tied = goodput_verdict(
        [_point("fastapi", 1, [10.0, 12.0, 9.0], 0.1), _point("gradio", 1, [11.0, 10.0, 10.5], 0.1)], 0.2
    )
    assert tied.sentence().startswith("no measurable difference")
    missing = goodput_verdict(
        [_point("fastapi", 1, [10.0, 10.0], 0.5), _point("gradio", 1, [9.0, 9.0], 0.1)], 0.2
    )
    assert missing.sentence() == "no comparison: fastapi met the SLO at no load measured"
