"""The interval methods on tables with known answers: each covers the true value in at least 90% of
seeded simulations (nominal 95%), and refuses to make an interval it cannot support."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.metrics.intervals import (
    BOOTSTRAP_GAPS,
    BOOTSTRAP_REQUESTS,
    T_PAIRED,
    T_TRIALS,
    WILSON,
    bootstrap_difference_interval,
    bootstrap_interval,
    bootstrap_ratio_interval,
    completion_gaps,
    mean_of_rows,
    paired_difference_interval,
    paired_ratio_interval,
    proportion_interval,
    quantile_of_rows,
    rate_interval,
    rate_of_gaps,
    t_quantile,
    trial_interval,
)

MIN_COVERAGE = 0.90


def test_t_quantiles_match_the_table_and_the_normal_limit() -> None:
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(2) == pytest.approx(4.303)
    assert t_quantile(30) == pytest.approx(2.042)
    assert t_quantile(40) == pytest.approx(2.021, abs=1e-3)
    assert t_quantile(120) == pytest.approx(1.980, abs=1e-3)
    assert t_quantile(31) < t_quantile(30)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_an_interval_needs_two_trials() -> None:
    assert trial_interval([1.0]) is None
    assert trial_interval([1.0, float("nan")]) is None
    interval = trial_interval([1.0, 2.0, 3.0])
    assert interval is not None
    assert interval.estimate == pytest.approx(2.0)
    # mean 2, s 1, N 3: half width 4.303 / sqrt(3)
    assert interval.high - interval.estimate == pytest.approx(4.303 / math.sqrt(3))
    assert interval.method == T_TRIALS and interval.n == 3
    assert interval.excludes(6.5) and not interval.excludes(2.5)


def test_trial_interval_covers_a_known_mean_under_drift() -> None:
    """Three trials per point, each off by a shared-box drift plus its own sampling noise."""
    true_mean, covered, runs = 10.0, 0, 1000
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        trials = true_mean + rng.normal(0, 0.4, size=3) + rng.normal(0, 0.2, size=3)
        interval = trial_interval(trials)
        assert interval is not None
        covered += not interval.excludes(true_mean)
    assert covered / runs >= MIN_COVERAGE


def test_bootstrap_mean_covers_a_known_mean_of_a_skewed_sample() -> None:
    mu, sigma = math.log(0.7), 0.4  # lognormal latencies around 0.7 s
    true_mean = math.exp(mu + sigma**2 / 2)
    covered, runs = 0, 300
    for seed in range(runs):
        sample = np.random.default_rng(seed).lognormal(mu, sigma, size=120)
        interval = bootstrap_interval(sample, mean_of_rows)
        assert interval is not None and interval.method == BOOTSTRAP_REQUESTS
        covered += not interval.excludes(true_mean)
    assert covered / runs >= MIN_COVERAGE


def test_bootstrap_p90_covers_a_known_quantile() -> None:
    rate = 2.0
    true_p90 = math.log(10) / rate  # exponential service times
    covered, runs = 0, 300
    for seed in range(runs):
        sample = np.random.default_rng(seed).exponential(1 / rate, size=200)
        interval = bootstrap_interval(sample, quantile_of_rows(0.9), min_samples=64)
        assert interval is not None
        assert interval.estimate == pytest.approx(float(np.quantile(sample, 0.9)))
        covered += not interval.excludes(true_p90)
    assert covered / runs >= MIN_COVERAGE


def test_bootstrap_refuses_a_sample_below_its_floor() -> None:
    assert bootstrap_interval(np.arange(10.0), quantile_of_rows(0.9), min_samples=64) is None


def test_rate_interval_covers_a_known_poisson_rate() -> None:
    rate, covered, runs = 3.0, 0, 300
    for seed in range(runs):
        t_done = np.cumsum(np.random.default_rng(seed).exponential(1 / rate, size=150))
        gaps = completion_gaps(t_done)
        interval = rate_interval(t_done, float(rate_of_gaps(gaps[np.newaxis, :])[0]))
        assert interval is not None and interval.method == BOOTSTRAP_GAPS
        covered += not interval.excludes(rate)
    assert covered / runs >= MIN_COVERAGE


def test_paired_ratio_covers_a_known_ratio_under_shared_drift() -> None:
    """Trial t of both servers shares the box's drift in that trial: pairing cancels it."""
    true_ratio, covered, runs = 1.08, 0, 1000
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        drift = rng.normal(0, 0.15, size=3)  # large, shared
        base = 1.4 * np.exp(drift + rng.normal(0, 0.02, size=3))
        other = 1.4 * true_ratio * np.exp(drift + rng.normal(0, 0.02, size=3))
        interval = paired_ratio_interval(dict(enumerate(other, 1)), dict(enumerate(base, 1)))
        assert interval is not None and interval.method == T_PAIRED
        covered += not interval.excludes(true_ratio)
    assert covered / runs >= MIN_COVERAGE


def test_paired_comparisons_use_only_trials_both_sides_have() -> None:
    a = {1: 2.0, 2: 2.2, 3: 2.1}
    b = {1: 1.0, 2: 1.1, 4: 9.0}
    ratio = paired_ratio_interval(a, b)
    assert ratio is not None and ratio.n == 2
    assert ratio.estimate == pytest.approx(2.0)
    difference = paired_difference_interval(a, b)
    assert difference is not None and difference.estimate == pytest.approx(1.05)
    assert paired_ratio_interval({1: 1.0}, {1: 2.0}) is None
    assert paired_ratio_interval({1: 0.0, 2: 1.0}, {1: 1.0, 2: 1.0}) is None


def test_one_trial_comparisons_bootstrap_both_samples() -> None:
    """A clear difference is excluded from 'none'; two samples of one distribution are not."""
    rng = np.random.default_rng(7)
    slow = rng.lognormal(math.log(0.8), 0.2, size=100)
    fast = rng.lognormal(math.log(0.6), 0.2, size=100)
    same = rng.lognormal(math.log(0.6), 0.2, size=100)
    difference = bootstrap_difference_interval(slow, fast, quantile_of_rows(0.9))
    assert difference is not None and difference.excludes(0.0) and difference.estimate > 0
    tie = bootstrap_ratio_interval(same, fast, mean_of_rows)
    assert tie is not None and not tie.excludes(1.0)


def test_bootstraps_are_reproducible() -> None:
    sample = np.random.default_rng(1).exponential(1.0, size=80)
    first = bootstrap_interval(sample, quantile_of_rows(0.5))
    second = bootstrap_interval(sample, quantile_of_rows(0.5))
    assert first == second


def test_a_rate_counted_over_a_window_keeps_its_estimate_inside_its_interval() -> None:
    """A window's count and the gaps' own rate differ at the edges: the interval follows the
    estimate it is given, with the gaps' relative spread."""
    t_done = np.cumsum(np.random.default_rng(3).exponential(1 / 3.0, size=40))
    gaps = completion_gaps(t_done)
    own = float(rate_of_gaps(gaps[np.newaxis, :])[0])
    same = rate_interval(t_done, own)
    counted = rate_interval(t_done, own * 0.9)
    assert same is not None and counted is not None
    assert counted.estimate == pytest.approx(own * 0.9) and counted.low <= counted.estimate <= counted.high
    assert counted.low == pytest.approx(same.low * 0.9) and counted.high == pytest.approx(same.high * 0.9)


def test_proportion_interval_covers_a_known_rare_share_and_stays_in_bounds() -> None:
    rng = np.random.default_rng(3)
    true_share, n = 0.004, 1500
    counts = rng.binomial(n, true_share, size=400)
    intervals = [proportion_interval(int(k), n) for k in counts]
    covered = np.mean([i is not None and i.low <= true_share <= i.high for i in intervals])
    assert covered >= MIN_COVERAGE
    none_seen = proportion_interval(0, 300)
    assert none_seen is not None and none_seen.method == WILSON and none_seen.estimate == 0.0
    assert none_seen.low == 0.0 and 0.005 < none_seen.high < 0.02  # zero seen is not "never"
    every = proportion_interval(20, 20)
    assert every is not None and every.high == 1.0 and every.low < 1.0
    assert proportion_interval(0, 0) is None
