"""95% confidence intervals for the headline statistics, and for the comparisons built on them.

One method per situation, and every interval carries the name of the method that made it (the
reports print it beside the number):

- **N ≥ 2 trials — between-trial t-interval.** Each trial gives one value of the statistic
  (throughput, p50, p90, mean protocol time); the interval is mean ± t(0.975, N − 1) · s / √N.
  The trials of a run are interleaved across servers, so their spread holds the drift of a shared
  box as well as the sampling noise of each trial.
- **N = 1 — bootstrap over requests.** Latency statistics resample the trial's requests;
  throughput resamples the gaps between successive completions (rate = 1 / mean gap), or for
  bursts each burst's makespan per image (images per second of makespan = 1 / its mean).
  Percentile bootstrap, :data:`BOOTSTRAP_RESAMPLES` resamples, seeded so a report is reproducible.
- **Comparisons.** Trial t of one server ran right beside trial t of the other, so comparisons
  pair them: a throughput ratio is the t-interval of the per-trial log ratios, exponentiated; a
  latency difference is the t-interval of the per-trial differences. With one trial each, the two
  samples are bootstrapped independently and the ratio or difference taken per resample.

- **Shares of events** (a failure rate): the Wilson score interval of ``count / n``.

A difference is called only when its interval excludes "no difference" (ratio 1, difference 0).
Only the 95% level is offered: t quantiles come from a table (no SciPy dependency).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261201
_BOOTSTRAP_BLOCK = 250  # resamples drawn at a time: bounds memory for large samples

T_TRIALS = "t-interval over trials"
T_PAIRED = "paired t-interval over trials"
BOOTSTRAP_REQUESTS = "bootstrap over requests (one trial)"
BOOTSTRAP_GAPS = "bootstrap over completion gaps (one trial)"
BOOTSTRAP_BURSTS = "bootstrap over bursts (one trial)"
WILSON = "Wilson score interval"

# t(0.975, df) for df = 1..30; beyond, a Cornish-Fisher expansion around z (error < 1e-3)
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z_975 = 1.959964

# A statistic over the rows of a (resamples, n) matrix -> one value per resample.
RowStatistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% confidence interval and how it was made."""

    estimate: float
    low: float
    high: float
    method: str
    n: int  # trials (t-intervals) or samples (bootstraps)

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval (a difference can be called)."""
        return value < self.low or value > self.high

    def scaled(self, factor: float) -> Interval:
        """The same interval in other units (e.g. seconds -> milliseconds)."""
        return Interval(self.estimate * factor, self.low * factor, self.high * factor, self.method, self.n)


def t_quantile(df: int) -> float:
    """t(0.975, df): the two-sided 95% quantile of Student's t."""
    if df < 1:
        raise ValueError(f"a t-interval needs at least 1 degree of freedom, not {df}")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = _Z_975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def proportion_interval(count: int, n: int) -> Interval | None:
    """The share ``count / n`` with its Wilson score interval (sound at 0 and near it, where a
    normal approximation would claim an impossible negative share); None when ``n`` is 0."""
    if n <= 0:
        return None
    share = count / n
    z2 = _Z_975**2
    centre = (share + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z_975 * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # clamped to [0, 1] and around the share itself, which rounding at 0 or n would leave out
    low, high = min(share, max(0.0, centre - half)), max(share, min(1.0, centre + half))
    return Interval(share, low, high, WILSON, n)


def _finite(values: object) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def trial_interval(values: object, method: str = T_TRIALS) -> Interval | None:
    """Mean of the per-trial values ± t · s / √N; None with fewer than two finite values."""
    array = _finite(values)
    if len(array) < 2:
        return None
    mean = float(array.mean())
    half = t_quantile(len(array) - 1) * float(array.std(ddof=1)) / math.sqrt(len(array))
    return Interval(mean, mean - half, mean + half, method, len(array))


def _bootstrap(
    samples: tuple[np.ndarray, ...], combine: Callable[..., np.ndarray], estimate: float, method: str
) -> Interval:
    """Percentile bootstrap: each sample resampled with replacement, ``combine`` applied per resample."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws: list[np.ndarray] = []
    for start in range(0, BOOTSTRAP_RESAMPLES, _BOOTSTRAP_BLOCK):
        block = min(_BOOTSTRAP_BLOCK, BOOTSTRAP_RESAMPLES - start)
        resampled = [sample[rng.integers(0, len(sample), size=(block, len(sample)))] for sample in samples]
        draws.append(np.asarray(combine(*resampled), dtype=float))
    values = np.concatenate(draws)
    values = values[np.isfinite(values)]
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high), method, min(len(s) for s in samples))


def bootstrap_interval(sample: object, statistic: RowStatistic, min_samples: int = 2) -> Interval | None:
    """The statistic of one trial's requests with a bootstrap interval; None below ``min_samples``."""
    array = _finite(sample)
    if len(array) < max(min_samples, 2):
        return None
    estimate = float(statistic(array[np.newaxis, :])[0])
    return _bootstrap((array,), statistic, estimate, BOOTSTRAP_REQUESTS)


def mean_of_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix.mean(axis=1)


def quantile_of_rows(q: float) -> RowStatistic:
    """The q-quantile of each row, as ``numpy.quantile`` computes it (linear interpolation)."""

    def statistic(matrix: np.ndarray) -> np.ndarray:
        return np.quantile(matrix, q, axis=1)

    return statistic


def rate_of_gaps(matrix: np.ndarray) -> np.ndarray:
    """Events per second from rows of inter-event gaps: 1 / mean gap."""
    return 1.0 / matrix.mean(axis=1)


def completion_gaps(t_done: object) -> np.ndarray:
    """Gaps between successive completions (sorted), the sample a one-trial rate is bootstrapped over."""
    return np.diff(np.sort(_finite(t_done)))


def rate_interval(t_done: object, rate: float) -> Interval | None:
    """One trial's throughput ``rate`` with a bootstrap interval over its completion gaps."""
    return seconds_per_event_interval(completion_gaps(t_done), rate, BOOTSTRAP_GAPS)


def seconds_per_event_interval(seconds: object, rate: float, method: str) -> Interval | None:
    """A rate of events (``rate``) with a bootstrap interval over the seconds each event took:
    completion gaps (``BOOTSTRAP_GAPS``) or each burst's makespan per image (``BOOTSTRAP_BURSTS``).

    ``rate`` may be counted otherwise than as 1 / mean gap (a window's completions / its
    length, whose edges the gaps do not see): the bootstrap's spread relative to the sample's
    own rate is carried over to it, so the interval always holds its estimate."""
    sample = _finite(seconds)
    sample = sample[sample >= 0]
    if len(sample) < 2 or sample.mean() <= 0:
        return None
    own_rate = float(rate_of_gaps(sample[np.newaxis, :])[0])
    spread = _bootstrap((sample,), rate_of_gaps, own_rate, method)
    scale = rate / own_rate
    return Interval(rate, spread.low * scale, spread.high * scale, method, spread.n)


def _paired(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    trials = sorted(
        t
        for t in set(a) & set(b)
        if a[t] is not None and b[t] is not None and np.isfinite([a[t], b[t]]).all()
    )
    return np.array([a[t] for t in trials], dtype=float), np.array([b[t] for t in trials], dtype=float)


def paired_ratio_interval(a: Mapping[int, float], b: Mapping[int, float]) -> Interval | None:
    """a / b from trials run side by side (keyed by trial): the t-interval of the per-trial log
    ratios, exponentiated (the estimate is their geometric mean). None with fewer than two pairs
    or a value ≤ 0."""
    a_values, b_values = _paired(a, b)
    if len(a_values) < 2 or (a_values <= 0).any() or (b_values <= 0).any():
        return None
    logs = trial_interval(np.log(a_values / b_values), T_PAIRED)
    assert logs is not None
    return Interval(math.exp(logs.estimate), math.exp(logs.low), math.exp(logs.high), T_PAIRED, logs.n)


def paired_difference_interval(a: Mapping[int, float], b: Mapping[int, float]) -> Interval | None:
    """a − b from trials run side by side: the t-interval of the per-trial differences."""
    a_values, b_values = _paired(a, b)
    return trial_interval(a_values - b_values, T_PAIRED)


def bootstrap_ratio_interval(
    a_sample: object, b_sample: object, statistic: RowStatistic, method: str = BOOTSTRAP_REQUESTS
) -> Interval | None:
    """statistic(a) / statistic(b) for one trial each, the two samples bootstrapped independently."""
    a_array, b_array = _finite(a_sample), _finite(b_sample)
    if len(a_array) < 2 or len(b_array) < 2:
        return None
    b_estimate = float(statistic(b_array[np.newaxis, :])[0])
    if b_estimate == 0:
        return None
    estimate = float(statistic(a_array[np.newaxis, :])[0]) / b_estimate
    return _bootstrap((a_array, b_array), lambda a, b: statistic(a) / statistic(b), estimate, method)


def bootstrap_difference_interval(
    a_sample: object, b_sample: object, statistic: RowStatistic
) -> Interval | None:
    """statistic(a) − statistic(b) for one trial each, the two samples bootstrapped independently."""
    a_array, b_array = _finite(a_sample), _finite(b_sample)
    if len(a_array) < 2 or len(b_array) < 2:
        return None
    estimate = float(statistic(a_array[np.newaxis, :])[0] - statistic(b_array[np.newaxis, :])[0])
    return _bootstrap(
        (a_array, b_array), lambda a, b: statistic(a) - statistic(b), estimate, BOOTSTRAP_REQUESTS
    )
