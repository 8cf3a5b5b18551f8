"""The knee and the saturation point of each load sweep, from its points' metrics.

The knee is the highest VALID load whose p90 stays within ``knee_factor`` x the
single-stream p90; saturation throughput is the VALID closed-loop point with the most
images/s. Both read :class:`~reports.metrics.points.PointMetrics` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reports.metrics.points import PointMetrics
from reports.metrics.rules import BASELINE_SCENARIO, SWEEP_SCENARIOS, ValidityRules
from reports.schema import ScenarioName


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
