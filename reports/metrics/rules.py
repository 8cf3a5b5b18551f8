"""The validity rules a load point is judged by, and the verdict constants (docs/design.md §5).

Plain dataclasses and constants, no pandas or numpy: the load generator records
``asdict(ValidityRules())`` in run.json and sizes its scenarios with it inside every Locust
worker, which imports this module alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from reports.schema import ScenarioName

VALID = "VALID"
INVALID = "INVALID"
# Sweeps whose points form a load axis (knee, saturation); the others are single probes.
SWEEP_SCENARIOS: tuple[str, ...] = (ScenarioName.THROUGHPUT, ScenarioName.OPEN_LOOP)
# The single-stream scenario that knees and service-time inflation are judged against
# (a sweep's VALID users=1 point stands in where a run has none).
BASELINE_SCENARIO = ScenarioName.LATENCY


@dataclass(frozen=True)
class ValidityRules:
    """docs/design.md §5 defaults; the load generator records ``asdict(ValidityRules())`` in run.json."""

    warmup_fraction: float = 0.1  # of the point's window, cut from its start
    warmup_requests_per_user: int = 3  # the cut is whichever of the two is longer
    min_samples_p90: int = 64  # binomial early-stopping floors per percentile
    min_samples_p99: int = 662
    min_samples_p999: int = 6636
    max_load_cpu_percent: float = 90.0
    max_error_rate: float = 0.01  # failed / measured requests; above it no latency or throughput claim
    max_send_lag_s: float = 0.010  # open loop: p99 send lag may reach max(this, ...)
    max_send_lag_gap_fraction: float = 0.05  # ... this fraction of the mean scheduled gap
    # Stability: each third's count may stray from its expected count by the larger of this
    # fraction of it and ``stability_sigmas`` standard deviations of chance (binomial for the
    # split of a closed loop's or the bursts' completions, Poisson for open-loop arrivals).
    max_thirds_spread: float = 0.15
    stability_sigmas: float = 3.0
    # The client's mean in-flight vs the configured users (burst size), and the client's
    # completion rate vs the server ledger's over the same window: |a - b| / max(a, b).
    max_littles_law_disagreement: float = 0.20
    knee_factor: float = 2.0  # knee: highest VALID load with p90 <= factor x single-stream p90
    # The deploy verdict calls a difference only when its 95% interval excludes none and the
    # estimate is at least this large (throughput ratio, or p90 ratio, 1.05 either way).
    material_difference: float = 0.05
    # Gradio's profiler against the ledger: a note where their medians differ by more than this.
    max_profiler_disagreement_s: float = 0.002
    # Soak: the memory slope (MB of RSS per 1,000 requests) is a least-squares line through
    # this many consecutive block means of the soak's second half; growth is flagged where its
    # 95% interval lies above the tolerance, a plateau called where it lies below. 10 KB per
    # request: what a soak of a few thousand requests resolves against the few MB a Python
    # server's RSS swings by (measured); Gradio's stock session store keeps 100-400 KB.
    soak_blocks: int = 6
    max_memory_growth_mb_per_1000: float = 10.0


def warmup_end(
    t_start: float, t_end: float, sorted_starts: Sequence[float], users: int | None, rules: ValidityRules
) -> float:
    """Where a point's measured window opens: the longer of ``warmup_fraction`` of its window
    [t_start, t_end] and its first ``warmup_requests_per_user`` x users requests (one "user"
    in open loop), given its requests' latency starts in ascending order. The reports cut each
    point here; the open-loop schedule is sized against the same cut (no pandas: the load
    generator imports this module alone)."""
    cut_by_time = t_start + rules.warmup_fraction * (t_end - t_start)
    warmup_requests = rules.warmup_requests_per_user * max(users or 1, 1)
    cut_by_count = sorted_starts[warmup_requests] if len(sorted_starts) > warmup_requests else t_end
    return max(cut_by_time, float(cut_by_count))


def rules_from_mapping(recorded: Mapping[str, Any] | None) -> ValidityRules:
    """The rules a run recorded (unknown keys ignored, missing ones at their defaults)."""
    if not recorded:
        return ValidityRules()
    known = {f.name for f in fields(ValidityRules)}
    return ValidityRules(**{k: v for k, v in recorded.items() if k in known})
