"""A soak's resource samples (``resources.csv``) turned into its verdict: how fast the server's
memory grew per 1,000 requests, with a 95% interval, and whether that is growth or a plateau.

The rule (``ValidityRules.soak_blocks``, ``max_memory_growth_mb_per_1000``):

- **The second half only.** Samples taken at or after the midpoint between the first and the
  last sample's times. The first half holds the warm-up every process goes through (allocator
  arenas, caches, stores that fill up to a bound, such as Gradio's sessions up to
  ``--state-sessions``): growth that stops, not growth per request.
- **Slope by least squares over block means.** x: the requests the server had finished at each
  sample; y: its resident memory in MB (10^6 bytes). Neighbouring samples are autocorrelated
  (RSS moves in allocator steps and garbage-collection cycles, so a residual persists over
  several samples), and a regression over the raw samples would understate the slope's error.
  So the second half's samples are cut into ``soak_blocks`` consecutive blocks of equal count
  (at least two samples each; fewer blocks where the samples are few, three at the least),
  each block replaced by its mean (requests, MB), and the slope is the least-squares line
  through the block means, its 95% interval ± t(0.975, blocks − 2) × its standard error.
- **Verdict.** Growth where the interval's low end lies above the tolerance; a plateau where
  its high end lies at or below it; otherwise inconclusive (a longer soak narrows the interval).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports.metrics.intervals import Interval, t_quantile
from reports.metrics.rules import ValidityRules

MB = 1e6
PER_REQUESTS = 1000  # the slope's unit: MB per this many requests
GROWTH = "growth"
PLATEAU = "plateau"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
_MIN_BLOCKS = 3  # a line through block means needs one degree of freedom left
_SAMPLES_PER_BLOCK = 2


@dataclass
class ResourceTrend:
    """One soak point (server, client, load point, trial): what its samples show."""

    run_id: str
    server: str
    client: str
    load_point: str
    trial: int
    n_samples: int
    duration_s: float
    requests: int  # requests the server finished during the soak
    rss_first_mb: float | None
    rss_last_mb: float | None
    slope: Interval | None  # MB per 1,000 requests, over the second half
    verdict: str  # GROWTH, PLATEAU, INCONCLUSIVE or NOT_MEASURED
    tolerance: float  # MB per 1,000 requests
    fds: tuple[int | None, int | None] = (None, None)  # first and last sample
    threads: tuple[int | None, int | None] = (None, None)
    temp_mb_last: float | None = None
    gpu_mb_last: float | None = None
    held_last: dict[str, int] = field(default_factory=dict)
    why: str = ""  # where the slope could not be measured

    def line(self) -> str:
        """The verdict line: "memory grew X MB per 1,000 requests (slope, 95% CI) — ..."."""
        who = f"{self.server}/{self.client}"
        if self.slope is None:
            return f"{who}: memory growth not measured: {self.why}"
        s = self.slope
        grew = (
            f"{who}: memory grew {s.estimate:.2f} MB per {PER_REQUESTS:,} requests "
            f"(slope, 95% CI {s.low:.2f} to {s.high:.2f}; {self.requests:,} requests in "
            f"{self.duration_s:.0f} s)"
        )
        tolerance = f"the {self.tolerance:g} MB tolerance"
        return (
            grew
            + {
                GROWTH: f" — GROWTH: the interval lies above {tolerance}",
                PLATEAU: f" — plateau: the interval lies at or below {tolerance}",
                INCONCLUSIVE: f" — inconclusive: the interval straddles {tolerance} (soak longer)",
            }[self.verdict]
        )


def block_slope(x: np.ndarray, y: np.ndarray, blocks: int) -> Interval | None:
    """The least-squares slope of y on x through consecutive block means, with its 95% interval
    (module docstring); None where fewer than three blocks of two samples, or no spread in x."""
    count = min(blocks, len(x) // _SAMPLES_PER_BLOCK)
    if count < _MIN_BLOCKS:
        return None
    parts = np.array_split(np.arange(len(x)), count)
    x_means = np.array([x[part].mean() for part in parts])
    y_means = np.array([y[part].mean() for part in parts])
    spread = float(((x_means - x_means.mean()) ** 2).sum())
    if spread <= 0:
        return None
    slope = float(((x_means - x_means.mean()) * (y_means - y_means.mean())).sum() / spread)
    residuals = y_means - (y_means.mean() + slope * (x_means - x_means.mean()))
    error = math.sqrt(float((residuals**2).sum()) / (count - 2) / spread)
    half = t_quantile(count - 2) * error
    method = f"least squares over {count} block means of the second half, t-interval ({count - 2} df)"
    return Interval(slope, slope - half, slope + half, method, count)


def _verdict(slope: Interval | None, tolerance: float) -> str:
    if slope is None:
        return NOT_MEASURED
    if slope.low > tolerance:
        return GROWTH
    return PLATEAU if slope.high <= tolerance else INCONCLUSIVE


def _first_last(samples: pd.DataFrame, column: str) -> tuple[int | None, int | None]:
    values = samples[column].dropna()
    return (None, None) if values.empty else (int(values.iloc[0]), int(values.iloc[-1]))


def _last_mb(samples: pd.DataFrame, column: str) -> float | None:
    values = samples[column].dropna()
    return None if values.empty else float(values.iloc[-1]) / MB


def _held(text: str) -> dict[str, int]:
    try:
        held = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return (
        {str(k): int(v) for k, v in held.items() if isinstance(v, int | float)}
        if isinstance(held, dict)
        else {}
    )


def resource_trends(
    resources: pd.DataFrame | None, rules: ValidityRules, run_id: str = ""
) -> list[ResourceTrend]:
    """One trend per soak point and trial of the run's samples (none without samples)."""
    if resources is None or resources.empty:
        return []
    trends = []
    keys = ["server", "client", "load_point", "trial"]
    for (server, client, load_point, trial), samples in resources.groupby(keys, sort=False):
        samples = samples.sort_values("t")
        memory = samples.dropna(subset=["rss_bytes"])
        t0, t1 = float(samples["t"].iloc[0]), float(samples["t"].iloc[-1])
        second = memory[memory["t"] >= (t0 + t1) / 2]
        x = second["requests"].to_numpy(dtype=float) / PER_REQUESTS
        y = second["rss_bytes"].to_numpy(dtype=float) / MB
        slope = block_slope(x, y, rules.soak_blocks)
        why = (
            ""
            if slope is not None
            else f"{len(second)} samples in the soak's second half ({_MIN_BLOCKS} blocks of "
            f"{_SAMPLES_PER_BLOCK} are the least), or no request finished in it: soak longer, or "
            "sample more often"
        )
        rss = memory["rss_bytes"]
        trends.append(
            ResourceTrend(
                run_id=run_id,
                server=str(server),
                client=str(client),
                load_point=str(load_point),
                trial=int(trial),
                n_samples=len(samples),
                duration_s=t1 - t0,
                requests=int(samples["requests"].max()),
                rss_first_mb=None if rss.empty else float(rss.iloc[0]) / MB,
                rss_last_mb=None if rss.empty else float(rss.iloc[-1]) / MB,
                slope=slope,
                verdict=_verdict(slope, rules.max_memory_growth_mb_per_1000),
                tolerance=rules.max_memory_growth_mb_per_1000,
                fds=_first_last(samples, "fds"),
                threads=_first_last(samples, "threads"),
                temp_mb_last=_last_mb(samples, "temp_bytes"),
                gpu_mb_last=_last_mb(samples, "gpu_bytes"),
                held_last=_held(str(samples["held"].iloc[-1])),
                why=why,
            )
        )
    return trends
