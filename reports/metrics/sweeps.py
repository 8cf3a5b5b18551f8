"""The knee of each load sweep, from its points' summaries over the trials.

The knee is the highest VALID load whose p90 stays within ``knee_factor`` x the p90 of the
same server and client one request at a time (its VALID single-stream point). Reads
:class:`~reports.metrics.summaries.PointSummary` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reports.metrics.rules import SWEEP_SCENARIOS, ValidityRules
from reports.metrics.summaries import PointSummary, single_stream


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
    summaries: Sequence[PointSummary], server: str, client: str
) -> tuple[float | None, str]:
    """The p90 a sweep's knee is judged against, and where it came from."""
    point = single_stream(summaries, server, client)
    if point is None:
        return None, "no VALID single-stream point (`latency`, or the sweep's users=1)"
    p90 = point.estimate("p90")
    if p90 is None:
        return (
            None,
            f"the single-stream point ({point.scenario} {point.load_point}) has too few samples for p90",
        )
    return p90, f"p90 of the VALID single-stream point ({point.scenario} {point.load_point})"


def knees(summaries: Sequence[PointSummary], rules: ValidityRules) -> list[Knee]:
    """One knee per (run, server, client, sweep scenario)."""
    found: list[Knee] = []
    sweeps = sorted(
        {(s.run_id, s.server, s.client, s.scenario) for s in summaries if s.scenario in SWEEP_SCENARIOS}
    )
    for run_id, server, client, scenario in sweeps:
        own = [s for s in summaries if s.run_id == run_id]
        base, source = single_stream_p90(own, server, client)
        if base is None:
            found.append(Knee(run_id, server, client, scenario, None, None, None, None, source))
            continue
        limit = rules.knee_factor * base
        inside = [
            s
            for s in own
            if (s.server, s.client, s.scenario) == (server, client, scenario)
            and s.valid
            and (s.estimate("p90") or float("inf")) <= limit
        ]
        if not inside:
            reason = f"no VALID point with p90 within {rules.knee_factor:g}x the {source}"
            found.append(Knee(run_id, server, client, scenario, None, None, base, limit, reason))
            continue
        knee = max(inside, key=lambda s: s.load)
        reason = f"highest VALID load with p90 <= {rules.knee_factor:g}x the {source}"
        found.append(
            Knee(run_id, server, client, scenario, knee.load, knee.estimate("p90"), base, limit, reason)
        )
    return found
