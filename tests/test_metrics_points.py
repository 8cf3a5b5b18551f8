"""reports.metrics.points on hand-built tables with known answers: the measured window, the
quantities of a point, every verdict rule, service-time inflation and the metrics frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from reports.metrics.points import (
    baseline_gpu_medians,
    bursts_of,
    measured_rows,
    measured_window,
    metrics_frame,
    point_metrics,
)
from reports.metrics.rules import INVALID, VALID
from reports.schema import ScenarioName
from tests.helpers.reports_tables import (
    RULES,
    burst_rows,
    ledger_of,
    metrics_of,
    point_of,
    poisson_open_loop,
    steady_rows,
    sweep_point,
    table_of,
)

LEDGER = ("t_recv", "t_admit", "t_gpu_start", "t_gpu_end", "t_send", "pre_s", "post_s", "gpu_depth")


# --- the measured window -------------------------------------------------------------------


def test_warmup_cut_is_the_longer_of_fraction_and_requests_per_user() -> None:
    rows = steady_rows(users=1, duration=10.0)
    assert measured_window(table_of(rows), point_of(rows), RULES) == pytest.approx((1.0, 10.0))
    assert metrics_of(rows).window_start == pytest.approx(1.0)  # 10% of 10 s beats 3 requests (0.3 s)
    slow = steady_rows(users=1, duration=10.0, service=1.0, pre=0.1, post=0.1)
    assert metrics_of(slow).window_start == pytest.approx(3.0)  # 3 requests of 1 s beat 1 s


def test_measured_rows_are_the_points_rows_inside_its_window() -> None:
    mine = steady_rows(duration=10.0)
    other = steady_rows(duration=10.0, scenario=ScenarioName.LATENCY)
    table = table_of(mine + other)
    (m,) = point_metrics(table_of(mine), [point_of(mine)], RULES)
    rows = measured_rows(table, m)
    assert len(rows) == m.n_measured == 90
    assert (rows["scenario"] == ScenarioName.THROUGHPUT).all()
    assert rows["t_sent"].min() >= m.window_start


# --- what a point measures -----------------------------------------------------------------


def test_point_percentiles_follow_the_sample_floors() -> None:
    m = metrics_of(steady_rows(duration=10.0))  # 100 requests, 90 measured
    assert m.p50_s == pytest.approx(0.1) and m.p90_s == pytest.approx(0.1)
    assert m.p99_s is None and m.p999_s is None and m.max_s == pytest.approx(0.1)
    assert any("p99" in n and "90 samples" in n for n in m.notes)


def test_collision_share_and_max_depth_at_a_point() -> None:
    rows = steady_rows(users=2, duration=10.0)  # two users in lock-step: every GPU interval overlaps
    for row in rows:
        row["gpu_depth"] = 2
    m = metrics_of(rows)
    assert m.collision_share == pytest.approx(1.0)
    assert m.max_gpu_depth == 2


def test_max_depth_is_computed_where_the_ledger_has_none() -> None:
    rows = steady_rows(users=2, duration=10.0)
    for row in rows:
        row["gpu_depth"] = None
    assert metrics_of(rows).max_gpu_depth == 2


def test_decomposition_covers_ok_rows_with_a_ledger_row_and_gives_their_mean() -> None:
    rows = steady_rows(duration=10.0)  # every request 0.1 s
    rows[50].update(ok=False, status=0, error="timeout: still open", t_done=rows[50]["t_sent"] + 2.0)
    rows[60].update({name: None for name in LEDGER}, t_done=rows[60]["t_sent"] + 0.4)  # no ledger join
    m = metrics_of(rows)
    assert m.n_ok == m.n_measured - 1 and m.n_decomposed == m.n_ok - 1
    parts = (m.wait_s, m.pre_s, m.gpu_s, m.post_s, m.protocol_s)
    assert sum(parts) == pytest.approx(m.decomposed_latency_s)
    assert m.decomposed_latency_s == pytest.approx(0.1)
    assert m.mean_latency_s == pytest.approx(0.1 + (1.9 + 0.3) / m.n_measured)  # timeout and no-join row


def test_timeouts_stay_in_the_latency_sample_and_fast_failures_do_not() -> None:
    rows = steady_rows(duration=10.0)
    rows[50].update(ok=False, status=0, error="timeout: no answer", t_done=rows[50]["t_sent"] + 5.0)
    rows[51].update(ok=False, status=503, error="http: queue full", t_done=rows[51]["t_sent"] + 0.001)
    m = metrics_of(rows)
    assert m.max_s == pytest.approx(5.0)
    assert m.mean_latency_s == pytest.approx((0.1 * (m.n_measured - 2) + 5.0) / (m.n_measured - 1))


def test_errors_grouped_by_kind_and_status() -> None:
    rows = steady_rows(duration=10.0)
    for i in (50, 51, 52):
        rows[i].update(ok=False, status=503, error="http: queue full")
    rows[60].update(ok=False, status=0, error="timeout: no answer after 30 s")
    rows[61].update(ok=False, status=500, error="")
    m = metrics_of(rows)
    assert m.errors == {"error [500]": 1, "http [503]": 3, "timeout [0]": 1}
    assert m.n_ok == m.n_measured - 5


def test_throughput_counts_successful_completions_in_the_measured_window() -> None:
    m = metrics_of(steady_rows(users=2, duration=10.0))
    # completions every 0.1 s per user; window [1.0, 10.0]: 90 per user, the one at 10.001 excluded
    assert m.throughput_rps == pytest.approx(2 * 90 / 9.0, rel=0.02)
    assert m.thirds_spread is not None and m.thirds_spread < 0.05


def test_point_checks_in_flight_against_users_and_completions_against_the_ledger() -> None:
    m = metrics_of(steady_rows(users=2, duration=10.0))
    assert m.client_in_flight == pytest.approx(2.0, rel=0.02) and m.configured_in_flight == 2
    assert m.in_flight_disagreement is not None and m.in_flight_disagreement < 0.05
    # no ledger given: the completions are not checked, and the point says so
    assert m.ledger_completion_rps is None and any("ledger" in n for n in m.notes)
    assert m.verdict == VALID


def test_client_completions_match_a_complete_ledger() -> None:
    rows = steady_rows(users=2, duration=10.0)
    ledger = pd.DataFrame(ledger_of(rows))
    (m,) = point_metrics(table_of(rows), [point_of(rows)], RULES, ledger=ledger)
    assert m.client_completion_rps == pytest.approx(m.throughput_rps)
    assert m.ledger_completion_rps == pytest.approx(m.client_completion_rps, rel=0.03)
    assert m.verdict == VALID, m.reasons
    other_server = ledger.assign(server="gradio")  # another server's ledger says nothing of this one
    (unchecked,) = point_metrics(table_of(rows), [point_of(rows)], RULES, ledger=other_server)
    assert unchecked.ledger_completion_rps is None


def test_service_time_inflation_against_the_latency_scenario() -> None:
    base = steady_rows(duration=10.0, scenario=ScenarioName.LATENCY)
    loaded = steady_rows(duration=10.0, t0=20.0, service=0.2, pre=0.01, post=0.01)  # gpu 0.176 vs 0.076
    results = point_metrics(
        table_of(base + loaded),
        [point_of(base), point_of(loaded, t_start=20.0, t_end=30.0)],
        RULES,
    )
    by_scenario = {m.scenario: m for m in results}
    assert by_scenario[ScenarioName.LATENCY].service_inflation == pytest.approx(1.0)
    assert by_scenario[ScenarioName.THROUGHPUT].service_inflation == pytest.approx(0.176 / 0.076, rel=1e-3)


def test_baseline_gpu_median_pools_valid_single_stream_points_only() -> None:
    results = [
        sweep_point(1, 0.1, scenario=ScenarioName.LATENCY, client="a", gpu_median_s=0.04),
        sweep_point(1, 0.1, scenario=ScenarioName.LATENCY, client="b", gpu_median_s=0.06),
        sweep_point(1, 0.1, scenario=ScenarioName.LATENCY, client="c", gpu_median_s=0.5, valid=False),
        sweep_point(1, 0.1, gpu_median_s=0.03),  # a users=1 sweep point: the latency points come first
        sweep_point(4, 0.1, gpu_median_s=0.2),
        sweep_point(1, 0.1, server="gradio", gpu_median_s=0.07),  # no latency point: users=1 stands in
        sweep_point(8, 0.1, server="gradio", gpu_median_s=0.3),
        sweep_point(2, 0.1, server="other", gpu_median_s=0.07),  # no single-stream point: no baseline
        sweep_point(1, 0.1, server="fastapi-naive"),  # no GPU time: no baseline
    ]
    assert baseline_gpu_medians(results) == pytest.approx({"fastapi": 0.05, "gradio": 0.07})


# --- verdict rules ---------------------------------------------------------------------------


def test_steady_point_is_valid() -> None:
    m = metrics_of(steady_rows(users=2, duration=10.0))
    assert m.verdict == VALID, m.reasons
    assert m.valid and m.reasons == []


def test_rule_load_cpu() -> None:
    m = metrics_of(steady_rows(), load_cpu_percent=91.0)
    assert m.verdict == INVALID and len(m.reasons) == 1 and "CPU" in m.reasons[0]
    assert metrics_of(steady_rows(), load_cpu_percent=89.0).verdict == VALID
    unknown = metrics_of(steady_rows(), load_cpu_percent=None)
    assert unknown.verdict == VALID and unknown.load_cpu_percent is None


def _open_loop(lag: float) -> list[dict[str, Any]]:
    rows = steady_rows(duration=10.0, service=0.1)
    for row in rows:  # rate 10/s: mean gap 0.1 s, so the limit is max(10 ms, 5 ms) = 10 ms
        row.update(
            t_scheduled=row["t_sent"],
            rate=10.0,
            users=None,
            send_lag=lag,
            load_point="rate=10/s",
            scenario=ScenarioName.OPEN_LOOP,
        )
    return rows


def test_rule_open_loop_send_lag() -> None:
    on_time = metrics_of(_open_loop(0.002))
    assert on_time.verdict == VALID and on_time.send_lag_p99_s == pytest.approx(0.002)
    late = metrics_of(_open_loop(0.05))
    assert late.verdict == INVALID and len(late.reasons) == 1 and "send lag" in late.reasons[0]
    assert late.send_lag_p99_s == pytest.approx(0.05)
    assert late.send_lag_limit_s == pytest.approx(0.010)


def test_send_lag_rule_skips_scenarios_it_does_not_cover() -> None:
    rows = steady_rows(duration=10.0)
    for row in rows:  # scheduled rows outside open loop and bursts: the rule says nothing
        row.update(t_scheduled=row["t_sent"], send_lag=0.5, scenario=ScenarioName.SPIKE)
    m = metrics_of(rows)
    assert m.send_lag_p99_s is None and m.send_lag_limit_s is None
    assert m.verdict == VALID, m.reasons


def test_rule_throughput_thirds() -> None:
    rows = [r for r in steady_rows(duration=10.0) if not 7.0 < r["t_sent"] < 9.0]  # a stall in the last third
    m = metrics_of(rows)
    assert m.verdict == INVALID
    assert m.thirds_spread is not None and m.thirds_spread > RULES.max_thirds_spread
    assert m.thirds_rps[-1] < 0.5 * m.thirds_rps[0]


def test_bursts_are_read_from_their_shared_release() -> None:
    rows = burst_rows([0.5, 1.0, 0.25], size=2, gap=0.2)
    rows[1].update(ok=False, status=503, error="http: queue full")
    bursts = bursts_of(table_of(rows))
    assert bursts["release"].tolist() == pytest.approx([0.0, 0.7, 1.9])
    assert bursts["size"].tolist() == [2, 2, 2] and bursts["images"].tolist() == [1, 2, 2]
    assert bursts["makespan"].tolist() == pytest.approx([0.5, 1.0, 0.25])


def test_burst_throughput_and_thirds_are_images_per_second_of_makespan() -> None:
    # the warm-up cut (3 requests per user, 2 users) drops the first three bursts
    rows = burst_rows([0.5] * 3 + [0.5] * 3 + [0.25] * 3 + [1.0] * 3, size=2)
    m = metrics_of(rows, t_start=0.0, t_end=9.2)
    assert m.window_start == pytest.approx(2.1)
    assert m.thirds_rps == pytest.approx([6 / 1.5, 6 / 0.75, 6 / 3.0])
    assert m.throughput_rps == pytest.approx(18 / 5.25)
    assert m.thirds_expected_rps == pytest.approx([18 / 5.25] * 3)


def test_bursts_are_judged_per_burst_not_per_wall_clock_third() -> None:
    # 10 identical bursts: wall-clock thirds would hold 3 or 4 bursts (a 30 % swing)
    steady = metrics_of(burst_rows([0.5] * 10), t_start=0.0, t_end=7.0)
    assert steady.thirds_rps == pytest.approx([4.0, 4.0, 4.0])
    assert steady.verdict == VALID, steady.reasons
    # 60 bursts of 4, the last third twice as slow
    slowing = metrics_of(burst_rows([0.5] * 40 + [1.0] * 20, size=4), t_start=0.0, t_end=52.0)
    assert slowing.verdict == INVALID, slowing.reasons
    assert slowing.thirds_rps[-1] < slowing.thirds_rps[0]
    assert slowing.thirds_spread is not None and slowing.thirds_spread > RULES.max_thirds_spread


def test_burst_send_lag_is_judged_against_the_burst_makespan() -> None:
    # makespan 0.5 s: limit max(10 ms, 5% x 500 ms) = 25 ms. The open-loop rule's
    # "mean gap" (window / rows = 6.3 s / 18 = 0.35 s, limit 17.5 ms) would fail 20 ms.
    together = metrics_of(burst_rows([0.5] * 10, lag=0.020), t_start=0.0, t_end=7.0)
    assert together.send_lag_limit_s == pytest.approx(0.025)
    assert together.send_lag_p99_s == pytest.approx(0.020)
    assert together.verdict == VALID, together.reasons
    apart = metrics_of(burst_rows([0.5] * 10, lag=0.040), t_start=0.0, t_end=7.0)
    assert apart.send_lag_p99_s == pytest.approx(0.040) and apart.send_lag_limit_s == pytest.approx(0.025)
    assert apart.verdict == INVALID and len(apart.reasons) == 1 and "send lag" in apart.reasons[0]
    fast = metrics_of(burst_rows([0.1] * 30, lag=0.012), t_start=0.0, t_end=9.0)  # 5% of 100 ms < 10 ms
    assert fast.send_lag_limit_s == pytest.approx(0.010)
    assert fast.verdict == INVALID


def test_open_loop_stability_compares_achieved_with_offered_per_third() -> None:
    m = metrics_of(poisson_open_loop(), t_end=30.0)  # ~72 arrivals in each third of [3 s, 30 s]
    # completions per third follow the Poisson arrivals: compared with each other (the
    # closed-loop rule) they spread by more than 15 %, although the server keeps up
    counts = np.array(m.thirds_rps)
    assert (counts.max() - counts.min()) / counts.mean() > RULES.max_thirds_spread
    assert m.thirds_rps == pytest.approx(m.thirds_expected_rps, rel=0.1)
    assert m.verdict == VALID, m.reasons


def test_open_loop_server_falling_behind_is_unstable() -> None:
    m = metrics_of(poisson_open_loop(slow_after=21.0), t_end=30.0)  # last third: 4/s served of 8/s offered
    assert m.thirds_rps[0] == pytest.approx(m.thirds_expected_rps[0], rel=0.1)
    assert m.thirds_rps[-1] < 0.7 * m.thirds_expected_rps[-1]
    assert m.verdict == INVALID and "fell behind" in m.reasons[0]


def test_stability_allows_more_chance_in_small_counts_than_in_large_ones() -> None:
    """The allowed deviation of a third is the larger of 15% and 3 standard deviations."""
    small = metrics_of(poisson_open_loop(rate=2.0, duration=30.0), t_end=30.0)  # ~18 arrivals a third
    large = metrics_of(poisson_open_loop(rate=60.0, duration=30.0, service_s=0.01), t_end=30.0)  # ~540
    small_share = np.array(small.thirds_allowed_rps) / np.array(small.thirds_expected_rps)
    large_share = np.array(large.thirds_allowed_rps) / np.array(large.thirds_expected_rps)
    assert (small_share > 0.5).all()  # 3 sqrt(18) / 18 = 71%
    assert large_share == pytest.approx([RULES.max_thirds_spread] * 3)  # 3 sqrt(540) / 540 = 13%


def test_rule_no_success() -> None:
    rows = steady_rows(duration=10.0)
    for row in rows:
        row.update(ok=False, status=500, error="server: boom")
    m = metrics_of(rows)
    assert m.verdict == INVALID and m.n_ok == 0 and m.n_measured == 90
    assert m.throughput_rps == 0.0 and m.p50_s is None


def test_rule_point_missing_from_run_json() -> None:
    rows = steady_rows(duration=10.0)
    (unfinished,) = point_metrics(table_of(rows), [], RULES)
    (finished,) = point_metrics(table_of(rows), [point_of(rows)], RULES)
    assert finished.verdict == VALID
    assert unfinished.verdict == INVALID and len(unfinished.reasons) == len(finished.reasons) + 1
    # its window is taken from its rows: first send to last completion
    assert unfinished.window_end == pytest.approx(rows[-1]["t_done"])


def test_recorded_point_without_rows_is_invalid() -> None:
    rows = steady_rows(duration=10.0)
    other = point_of(rows, load_point="users=8", users=8)
    results = {m.load_point: m for m in point_metrics(table_of(rows), [point_of(rows), other], RULES)}
    assert results["users=8"].verdict == INVALID and results["users=8"].n_rows == 0
    assert results["users=1"].verdict == VALID


# --- the frame ---------------------------------------------------------------------------------


def test_metrics_frame_has_one_row_per_point_and_lists_as_text() -> None:
    rows = steady_rows(duration=10.0)
    rows[50].update(ok=False, status=503, error="http: queue full")
    results = point_metrics(table_of(rows), [point_of(rows, load_cpu_percent=95.0)], RULES)
    frame = metrics_frame(results)
    assert len(frame) == 1
    record = frame.iloc[0]
    assert record["verdict"] == INVALID and record["reasons"] == "; ".join(results[0].reasons)
    assert record["errors"] == "http [503]: 1"
    assert record["throughput_rps"] == pytest.approx(results[0].throughput_rps)


# --- issue 9: measurement defects, each pinned on a table whose answer is known ----------------


def test_error_rate_above_the_limit_makes_a_point_invalid() -> None:
    """Defect 2: fast 503s must not leave a point VALID with a latency from the few that succeeded."""
    rows = steady_rows(users=2, duration=10.0)
    for i, row in enumerate(rows):
        if i % 50:  # all but one in 50 fail fast
            row.update(ok=False, status=503, error="http: queue full", t_done=row["t_sent"] + 0.001)
    m = metrics_of(rows)
    assert m.verdict == INVALID and m.error_rate is not None and m.error_rate > 0.95
    assert any(r.startswith(f"error rate {m.error_rate:.0%}") for r in m.reasons), m.reasons
    one_failure = steady_rows(users=2, duration=10.0)
    one_failure[40].update(ok=False, status=503, error="http: queue full")  # 1 of 180 measured: < 1%
    assert metrics_of(one_failure).verdict == VALID


def test_burst_throughput_is_images_over_the_sum_of_burst_makespans() -> None:
    """Defect 4: the idle drain between bursts is not serving time."""
    m = metrics_of(burst_rows([0.2] * 20, size=4, gap=0.3), t_start=0.0, t_end=10.0)
    assert m.throughput_rps == pytest.approx(4 / 0.2)  # not 4 images per 0.5 s of wall time


def _drop(rows: list[dict[str, Any]], share: float, seed: int = 3) -> list[dict[str, Any]]:
    keep = np.random.default_rng(seed).random(len(rows)) >= share
    return [row for row, kept in zip(rows, keep, strict=True) if kept]


def test_dropped_rows_or_late_completions_fail_the_closed_loop_in_flight_check() -> None:
    """Defect 6: the client's mean in-flight is checked against the configured users."""
    assert metrics_of(steady_rows(users=2, duration=10.0)).verdict == VALID
    dropped = metrics_of(_drop(steady_rows(users=2, duration=10.0), 0.3))
    assert any("configured" in r for r in dropped.reasons), dropped.reasons
    late = steady_rows(users=2, duration=10.0)
    for row in late:
        row["t_done"] += 0.5
    late_m = metrics_of(late)
    assert any("configured" in r for r in late_m.reasons), late_m.reasons


def test_dropped_rows_or_late_completions_fail_the_burst_in_flight_check() -> None:
    """Defect 6 for bursts: every burst holds the configured number of requests at its release."""
    assert metrics_of(burst_rows([0.5] * 10, size=4), t_start=0.0, t_end=7.0).verdict == VALID
    dropped = metrics_of(_drop(burst_rows([0.5] * 10, size=4), 0.3), t_start=0.0, t_end=7.0)
    assert any("configured" in r for r in dropped.reasons), dropped.reasons
    late = burst_rows([0.5] * 10, size=4)
    for row in late:
        row["t_done"] += 0.5
    late_m = metrics_of(late, t_start=0.0, t_end=7.5)
    assert any("configured" in r for r in late_m.reasons), late_m.reasons


@pytest.mark.parametrize("exponential", [False, True], ids=["deterministic", "exponential"])
def test_stable_fifo_server_at_90_percent_utilisation_is_valid_in_95_percent_of_seeds(
    exponential: bool,
) -> None:
    """Defect 7: ~73 arrivals in the measured window, a FIFO server 90% busy that keeps up."""
    rate, duration, seeds = 8.0, 10.15, 200
    valid = 0
    for seed in range(seeds):
        rows = poisson_open_loop(
            rate=rate, duration=duration, seed=seed, service_s=0.9 / rate, exponential_service=exponential
        )
        m = metrics_of(rows, t_end=duration)
        valid += m.verdict == VALID
    assert valid / seeds >= 0.95


def test_service_time_inflation_is_judged_only_against_a_valid_single_stream_point() -> None:
    """Defect 9: an INVALID `latency` point is no baseline."""
    base = steady_rows(duration=10.0, scenario=ScenarioName.LATENCY)
    loaded = steady_rows(users=2, duration=10.0, t0=20.0, service=0.2, pre=0.01, post=0.01)
    results = point_metrics(
        table_of(base + loaded),
        [point_of(base, load_cpu_percent=95.0), point_of(loaded, t_start=20.0, t_end=30.0)],
        RULES,
    )
    by_scenario = {m.scenario: m for m in results}
    assert by_scenario[ScenarioName.LATENCY].verdict == INVALID
    assert by_scenario[ScenarioName.THROUGHPUT].service_inflation is None
