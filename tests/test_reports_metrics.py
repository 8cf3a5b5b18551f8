"""Metrics on hand-built tables with known answers: percentiles, decomposition, collisions,
throughput, warm-up, Little's law, every verdict rule, the knee, the deploy section, loading."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reports import metrics
from reports.load import load_run, typed_table
from reports.metrics import INVALID, VALID, ValidityRules
from reports.schema import COLUMNS, PointRecord, RequestRow, as_record

RULES = ValidityRules()


def table_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A typed table from partial rows (RequestRow fills the rest), as load.py would give it."""
    defaults = {
        "run_id": "r",
        "request_id": "",
        "server": "fastapi",
        "client": "fastapi",
        "scenario": "throughput",
        "load_point": "users=1",
    }
    records = [
        as_record(RequestRow(**{**defaults, "request_id": str(i), **row})) for i, row in enumerate(rows)
    ]
    return typed_table(pd.DataFrame.from_records(records, columns=list(COLUMNS)))


def steady_rows(
    *,
    users: int = 1,
    duration: float = 10.0,
    service: float = 0.1,
    t0: float = 0.0,
    pre: float = 0.01,
    post: float = 0.01,
    protocol: float = 0.004,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Closed loop with ``users`` independent users, each request taking ``service`` seconds
    (pre + gpu + post + protocol; no waiting), until ``t0 + duration``."""
    gpu = service - pre - post - protocol
    rows = []
    for user in range(users):
        for k in range(round(duration / service)):  # by index: summing floats would drift
            t = t0 + user * 1e-3 + k * service
            recv = t + protocol / 2
            rows.append(
                {
                    "t_sent": t,
                    "t_done": t + service,
                    "status": 200,
                    "ok": True,
                    "users": users,
                    "t_recv": recv,
                    "t_admit": recv + pre,
                    "t_gpu_start": recv + pre,
                    "t_gpu_end": recv + pre + gpu,
                    "t_send": recv + pre + gpu + post,
                    "pre_s": pre,
                    "post_s": post,
                    "gpu_depth": 1,
                    "load_point": f"users={users}",
                    **fields,
                }
            )
    return rows


def point_of(
    rows: list[dict[str, Any]], *, t_start: float = 0.0, t_end: float = 10.0, **extra: Any
) -> PointRecord:
    first = rows[0]
    values: dict[str, Any] = {
        "server": first.get("server", "fastapi"),
        "client": first.get("client", "fastapi"),
        "scenario": first.get("scenario", "throughput"),
        "load_point": first.get("load_point", "users=1"),
        "users": first.get("users"),
        "rate": first.get("rate"),
        "t_start": t_start,
        "t_end": t_end,
        "t_drain_end": None,
        "load_cpu_percent": 20.0,
        "peak_gpu_bytes": None,
    }
    values.update(extra)
    return PointRecord(**values)


def only(rows: list[dict[str, Any]], **point: Any) -> metrics.PointMetrics:
    results = metrics.point_metrics(table_of(rows), [point_of(rows, **point)], RULES)
    assert len(results) == 1
    return results[0]


# --- per-row quantities --------------------------------------------------------------


def test_latency_uses_schedule_in_open_loop_and_send_otherwise() -> None:
    table = table_of(
        [
            {"t_sent": 1.0, "t_done": 1.5},
            {"t_scheduled": 2.0, "t_sent": 2.2, "t_done": 2.5},
        ]
    )
    assert metrics.latency(table).tolist() == pytest.approx([0.5, 0.5])


def test_percentiles_are_shown_only_above_their_sample_floors() -> None:
    values = pd.Series(np.arange(1, 101, dtype=float))
    assert metrics.percentile(values, 0.5, 1) == pytest.approx(50.5)
    assert metrics.percentile(values, 0.9, RULES.min_samples_p90) == pytest.approx(90.1)
    assert metrics.percentile(values, 0.99, RULES.min_samples_p99) is None
    big = pd.Series(np.arange(1, 1001, dtype=float))
    assert metrics.percentile(big, 0.99, RULES.min_samples_p99) == pytest.approx(990.01)
    assert metrics.percentile(big, 0.999, RULES.min_samples_p999) is None


def test_point_percentiles_and_note_follow_the_sample() -> None:
    m = only(steady_rows(duration=10.0))  # 100 requests, 90 measured
    assert m.p50_s == pytest.approx(0.1) and m.p90_s == pytest.approx(0.1)
    assert m.p99_s is None and m.p999_s is None and m.max_s == pytest.approx(0.1)
    assert any("p99, p99.9 not shown" in n for n in m.notes)


def test_decomposition_fastapi_gpu_lock_pre_before_admission() -> None:
    # recv 0, pre 0..0.02, waits for the lock until 0.05, gpu 0.05..0.15, post 0.03, done at 0.2
    row = {
        "t_sent": 0.0,
        "t_done": 0.2,
        "t_recv": 0.0,
        "t_admit": 0.05,
        "t_gpu_start": 0.05,
        "t_gpu_end": 0.15,
        "t_send": 0.18,
        "pre_s": 0.02,
        "post_s": 0.03,
    }
    parts = metrics.decomposition(table_of([row])).iloc[0]
    assert parts.tolist() == pytest.approx([0.03, 0.02, 0.10, 0.03, 0.02])
    assert parts.sum() == pytest.approx(0.2)


def test_decomposition_gradio_queue_pre_after_admission() -> None:
    # accepted at 0.01, slot at 0.04, pre 0.04..0.06, gpu 0.06..0.16, post 0.02, done 0.25
    row = {
        "t_sent": 0.0,
        "t_done": 0.25,
        "t_recv": 0.01,
        "t_admit": 0.04,
        "t_gpu_start": 0.06,
        "t_gpu_end": 0.16,
        "t_send": 0.18,
        "pre_s": 0.02,
        "post_s": 0.02,
    }
    parts = metrics.decomposition(table_of([row])).iloc[0]
    assert parts["wait"] == pytest.approx(0.03)
    assert parts["protocol"] == pytest.approx(0.25 - 0.03 - 0.02 - 0.10 - 0.02)


def test_gpu_overlaps_count_others_and_depth_within_one_server_process() -> None:
    table = table_of(
        [
            {"t_gpu_start": 0.0, "t_gpu_end": 1.0},
            {"t_gpu_start": 0.5, "t_gpu_end": 1.5},
            {"t_gpu_start": 0.6, "t_gpu_end": 0.7},
            {"t_gpu_start": 2.0, "t_gpu_end": 3.0},
            {"t_gpu_start": 3.0, "t_gpu_end": 4.0},  # touching is not overlapping
            {"t_gpu_start": 0.5, "t_gpu_end": 1.5, "server": "gradio"},  # another process
        ]
    )
    found = metrics.gpu_overlaps(table)
    assert found["overlapping"].tolist() == [2, 2, 2, 0, 0, 0]
    assert found["depth"].tolist() == [1, 2, 3, 1, 1, 1]


def test_collision_share_and_max_depth_at_a_point() -> None:
    rows = steady_rows(users=2, duration=10.0)  # two users in lock-step: every GPU interval overlaps
    for row in rows:
        row["gpu_depth"] = 2
    m = only(rows)
    assert m.collision_share == pytest.approx(1.0)
    assert m.max_gpu_depth == 2


def test_decomposition_covers_ok_rows_with_a_ledger_row_and_says_their_mean() -> None:
    rows = steady_rows(duration=10.0)  # every request 0.1 s
    ledger = ("t_recv", "t_admit", "t_gpu_start", "t_gpu_end", "t_send", "pre_s", "post_s", "gpu_depth")
    rows[50].update(ok=False, status=0, error="timeout: still open", t_done=rows[50]["t_sent"] + 2.0)
    rows[60].update({name: None for name in ledger}, t_done=rows[60]["t_sent"] + 0.4)  # no ledger join
    m = only(rows)
    assert m.n_ok == m.n_measured - 1 and m.n_decomposed == m.n_ok - 1
    parts = (m.wait_s, m.pre_s, m.gpu_s, m.post_s, m.protocol_s)
    assert sum(parts) == pytest.approx(m.decomposed_latency_s)
    assert m.decomposed_latency_s == pytest.approx(0.1)
    assert m.mean_latency_s == pytest.approx(0.1 + (1.9 + 0.3) / m.n_measured)  # timeout and no-join row
    assert any("decomposition over the" in n for n in m.notes)


def test_errors_grouped_by_kind_and_status() -> None:
    rows = steady_rows(duration=10.0)
    for i in (50, 51, 52):
        rows[i].update(ok=False, status=503, error="http: queue full")
    rows[60].update(ok=False, status=0, error="timeout: no answer after 30 s")
    rows[61].update(ok=False, status=500, error="")
    m = only(rows)
    assert m.errors == {"error [500]": 1, "http [503]": 3, "timeout [0]": 1}
    assert m.n_ok == m.n_measured - 5


# --- throughput, warm-up, Little's law -------------------------------------------------


def test_warmup_cut_is_the_longer_of_fraction_and_requests_per_user() -> None:
    rows = steady_rows(users=1, duration=10.0)
    m = only(rows)
    assert m.window_start == pytest.approx(1.0)  # 10% of 10 s beats 3 requests (0.3 s)
    slow = only(steady_rows(users=1, duration=10.0, service=1.0, pre=0.1, post=0.1))
    assert slow.window_start == pytest.approx(3.0)  # 3 requests of 1 s beat 1 s


def test_throughput_counts_successful_completions_in_the_measured_window() -> None:
    m = only(steady_rows(users=2, duration=10.0))
    # completions every 0.1 s per user; window [1.0, 10.0]: 90 per user, the one at 10.001 excluded
    assert m.throughput_rps == pytest.approx(2 * 90 / 9.0, rel=0.02)
    assert m.thirds_spread is not None and m.thirds_spread < 0.05


def test_littles_law_known_answer() -> None:
    # two requests always open: L = 2; rate 20/s x W 0.1 s = 2
    starts = np.arange(0, 10, 0.05)
    ends = starts + 0.1
    l_in_flight, lambda_w, disagreement = metrics.littles_law(starts, ends, 1.0, 9.0)
    assert l_in_flight == pytest.approx(2.0, rel=1e-6)
    assert lambda_w == pytest.approx(2.0, rel=1e-6)
    assert disagreement == pytest.approx(0.0, abs=1e-6)


def test_point_reports_littles_law_both_sides() -> None:
    m = only(steady_rows(users=2, duration=10.0))
    assert m.client_in_flight == pytest.approx(2.0, rel=0.02)
    assert m.server_in_flight == pytest.approx(2.0 * 0.096 / 0.1, rel=0.02)  # server time excludes protocol
    assert m.client_littles_disagreement < 0.05 and m.server_littles_disagreement < 0.05


def test_service_time_inflation_against_the_latency_scenario() -> None:
    base = steady_rows(duration=10.0, scenario="latency")
    loaded = steady_rows(duration=10.0, t0=20.0, service=0.2, pre=0.01, post=0.01)  # gpu 0.176 vs 0.076
    results = metrics.point_metrics(
        table_of(base + loaded),
        [point_of(base), point_of(loaded, t_start=20.0, t_end=30.0)],
        RULES,
    )
    by_scenario = {m.scenario: m for m in results}
    assert by_scenario["latency"].service_inflation == pytest.approx(1.0)
    assert by_scenario["throughput"].service_inflation == pytest.approx(0.176 / 0.076, rel=1e-3)


# --- verdict rules -----------------------------------------------------------------------


def test_steady_point_is_valid() -> None:
    m = only(steady_rows(users=2, duration=10.0))
    assert m.verdict == VALID, m.reasons


def test_rule_load_cpu() -> None:
    m = only(steady_rows(), load_cpu_percent=91.0)
    assert m.verdict == INVALID and "CPU" in m.reasons[0]
    unknown = only(steady_rows(), load_cpu_percent=None)
    assert unknown.verdict == VALID and any("not checked" in n for n in unknown.notes)


def test_rule_open_loop_send_lag() -> None:
    def open_loop(lag: float) -> list[dict[str, Any]]:
        rows = steady_rows(duration=10.0, service=0.1)
        for row in rows:  # rate 10/s: mean gap 0.1 s, so the limit is max(10 ms, 5 ms) = 10 ms
            row.update(
                t_scheduled=row["t_sent"],
                rate=10.0,
                users=None,
                send_lag=lag,
                load_point="rate=10/s",
                scenario="open-loop",
            )
        return rows

    assert only(open_loop(0.002)).verdict == VALID
    late = only(open_loop(0.05))
    assert late.verdict == INVALID and "send lag" in late.reasons[0]
    assert late.send_lag_limit_s == pytest.approx(0.010)


def test_send_lag_rule_skips_scenarios_it_does_not_cover() -> None:
    rows = steady_rows(duration=10.0)
    for row in rows:  # scheduled rows outside open loop and bursts: the rule says nothing
        row.update(t_scheduled=row["t_sent"], send_lag=0.5, scenario="spike")
    m = only(rows)
    assert m.send_lag_p99_s is None and not any("send lag" in r for r in m.reasons)
    assert any(n.startswith("send lag not checked") for n in m.notes)


def test_rule_throughput_thirds() -> None:
    rows = [r for r in steady_rows(duration=10.0) if not 7.0 < r["t_sent"] < 9.0]  # a stall in the last third
    m = only(rows)
    assert m.verdict == INVALID and any(r.startswith("unstable") for r in m.reasons)


def burst_rows(
    makespans: list[float], size: int = 2, gap: float = 0.2, lag: float = 0.0
) -> list[dict[str, Any]]:
    """Bursts of ``size`` requests released together, each after the previous one drained;
    every send leaves ``lag`` seconds after its burst's release."""
    rows, release = [], 0.0
    for span in makespans:
        for k in range(size):
            done = release + span * (k + 1) / size
            rows.append(
                {
                    "t_scheduled": release,
                    "t_sent": release + lag,
                    "send_lag": lag,
                    "t_done": done,
                    "status": 200,
                    "ok": True,
                    "users": size,
                    "scenario": "collisions",
                    "load_point": f"burst={size}",
                }
            )
        release += span + gap
    return rows


def test_bursts_are_judged_per_burst_not_per_wall_clock_third() -> None:
    # 10 identical bursts: wall-clock thirds would hold 3 or 4 bursts (a 30 % swing)
    steady = burst_rows([0.5] * 10)
    m = only(steady, t_start=0.0, t_end=7.0)
    assert m.thirds_rps == pytest.approx([4.0, 4.0, 4.0])
    assert not any(r.startswith("unstable") for r in m.reasons)
    slowing = burst_rows([0.5] * 7 + [1.0] * 3)  # the last bursts take twice as long
    m = only(slowing, t_start=0.0, t_end=9.0)
    assert any(r.startswith("unstable: throughput across the bursts' thirds") for r in m.reasons)


def test_burst_send_lag_is_judged_against_the_burst_makespan() -> None:
    # makespan 0.5 s: limit max(10 ms, 5% x 500 ms) = 25 ms. The open-loop rule's
    # "mean gap" (window / rows = 6.3 s / 18 = 0.35 s, limit 17.5 ms) would fail 20 ms.
    together = only(burst_rows([0.5] * 10, lag=0.020), t_start=0.0, t_end=7.0)
    assert together.send_lag_limit_s == pytest.approx(0.025)
    assert together.send_lag_p99_s == pytest.approx(0.020)
    assert not any("send lag" in r for r in together.reasons), together.reasons
    apart = only(burst_rows([0.5] * 10, lag=0.040), t_start=0.0, t_end=7.0)
    assert any(r.startswith("burst send lag p99 40.0 ms exceeds 25.0 ms") for r in apart.reasons)
    assert not any("open-loop" in r for r in apart.reasons)
    fast = only(burst_rows([0.1] * 30, lag=0.012), t_start=0.0, t_end=9.0)  # 5% of 100 ms < 10 ms
    assert fast.send_lag_limit_s == pytest.approx(0.010)
    assert any(r.startswith("burst send lag") for r in fast.reasons)


def poisson_open_loop(
    *, rate: float = 8.0, duration: float = 30.0, seed: int = 0, slow_after: float | None = None
) -> list[dict[str, Any]]:
    """Poisson arrivals at ``rate`` for ``duration`` seconds served FIFO by one server, each
    request sent 1 ms after its schedule. The server takes 50 ms a request (it keeps up);
    after ``slow_after`` it takes 250 ms (4/s: it falls further behind with every arrival)."""
    rng = np.random.default_rng(seed)
    rows, t, free = [], 0.0, 0.0
    while True:
        t += float(rng.exponential(1.0 / rate))
        if t >= duration:
            return rows
        sent = t + 0.001
        service = 0.25 if slow_after is not None and sent >= slow_after else 0.05
        free = max(sent, free) + service
        rows.append(
            {
                "t_scheduled": t,
                "t_sent": sent,
                "send_lag": 0.001,
                "t_done": free,
                "status": 200,
                "ok": True,
                "scenario": "open-loop",
                "rate": rate,
                "load_point": f"rate={rate:g}/s",
            }
        )


def test_open_loop_stability_compares_achieved_with_offered_per_third() -> None:
    m = only(poisson_open_loop(), t_end=30.0)  # ~72 arrivals in each third of [3 s, 30 s]
    # completions per third follow the Poisson arrivals: compared with each other (the
    # closed-loop rule) they spread by more than 15 %, although the server keeps up
    counts = np.array(m.thirds_rps)
    assert (counts.max() - counts.min()) / counts.mean() > RULES.max_thirds_spread
    assert m.thirds_basis.startswith("achieved ÷ offered per third")
    assert m.thirds_ratio == pytest.approx([1.0, 1.0, 1.0], abs=0.1)
    assert m.thirds_spread is not None and m.thirds_spread <= RULES.max_thirds_spread
    assert not any(r.startswith("unstable") for r in m.reasons), m.reasons


def test_open_loop_server_falling_behind_is_unstable() -> None:
    m = only(poisson_open_loop(slow_after=21.0), t_end=30.0)  # last third: 4/s served of 8/s offered
    assert m.thirds_ratio[0] == pytest.approx(1.0, abs=0.1) and m.thirds_ratio[-1] < 0.7
    (reason,) = [r for r in m.reasons if r.startswith("unstable")]
    assert "achieved ÷ offered per third" in reason and "fell behind the offered load" in reason


def test_rule_littles_law() -> None:
    rows = steady_rows(duration=10.0)
    rows[-1]["t_done"] = rows[-1]["t_sent"] + 30.0  # one request hangs far past the window
    rows[-1]["t_send"] = rows[-1]["t_done"] - 0.002
    m = only(rows)
    assert m.verdict == INVALID
    assert any("client-side Little's law" in r for r in m.reasons)
    assert any("server-side Little's law" in r for r in m.reasons)


def test_rule_no_success() -> None:
    rows = steady_rows(duration=10.0)
    for row in rows:
        row.update(ok=False, status=500, error="server: boom")
    m = only(rows)
    assert m.verdict == INVALID and m.reasons[0] == "no successful request in the measured window"


def test_rule_point_missing_from_run_json() -> None:
    rows = steady_rows(duration=10.0)
    results = metrics.point_metrics(table_of(rows), [], RULES)
    assert results[0].verdict == INVALID and "ended before this point finished" in results[0].reasons[-1]


def test_rules_round_trip_through_run_json() -> None:
    recorded = json.loads(json.dumps(asdict(replace(RULES, knee_factor=3.0))))
    assert metrics.rules_from_mapping(recorded).knee_factor == 3.0
    assert metrics.rules_from_mapping(None) == RULES


# --- knee and the deploy section -----------------------------------------------------------


def _sweep_point(users: int, p90: float, valid: bool = True, **fields: Any) -> metrics.PointMetrics:
    values: dict[str, Any] = dict(
        run_id="r",
        server="fastapi",
        client="fastapi",
        scenario="throughput",
        load_point=f"users={users}",
        users=users,
        rate=None,
        load=float(users),
        verdict=VALID if valid else INVALID,
        p90_s=p90,
    )
    values.update(fields)
    return metrics.PointMetrics(**values)


def test_knee_is_the_highest_valid_load_within_the_factor() -> None:
    results = [
        _sweep_point(1, 0.10, scenario="latency", load_point="users=1"),
        _sweep_point(1, 0.10),
        _sweep_point(2, 0.15),
        _sweep_point(4, 0.19),
        _sweep_point(8, 0.18, valid=False),  # within the factor but INVALID
        _sweep_point(16, 0.50),
    ]
    (knee,) = metrics.knees(results, RULES)
    assert (
        knee.load == 4.0
        and knee.baseline_p90_s == pytest.approx(0.10)
        and knee.limit_s == pytest.approx(0.20)
    )


def test_knee_falls_back_to_the_lowest_sweep_point_and_reports_none() -> None:
    (fallback,) = metrics.knees([_sweep_point(1, 0.10), _sweep_point(2, 0.15)], RULES)
    assert fallback.load == 2.0 and "lowest load" in fallback.reason
    (none,) = metrics.knees([_sweep_point(1, 0.10, valid=False), _sweep_point(2, 0.5, valid=False)], RULES)
    assert none.load is None and "no VALID point" in none.reason


def test_recommend_nothing_without_valid_points() -> None:
    rec = metrics.recommend([_sweep_point(1, 0.1, valid=False)])
    assert not rec.recommends and "nothing is recommended" in rec.verdict and not rec.findings


def test_recommend_compares_the_servers_from_valid_points() -> None:
    def pair(server: str, client: str, scale: float) -> list[metrics.PointMetrics]:
        common = dict(
            server=server,
            client=client,
            wait_s=0.01 * scale,
            pre_s=0.01,
            gpu_s=0.05,
            post_s=0.01,
            protocol_s=0.004 * scale,
        )
        return [
            _sweep_point(1, 0.07 * scale, scenario="latency", throughput_rps=14 / scale, **common),
            _sweep_point(4, 0.16 * scale, throughput_rps=24 / scale, **common),
        ]

    rec = metrics.recommend(pair("fastapi", "fastapi", 1.0) + pair("gradio", "gradio-file", 1.5))
    assert rec.recommends and rec.pair == ("fastapi", "gradio-file")
    assert rec.verdict.startswith(
        "FastAPI serves 50% more images/s and answers 80.0 ms sooner at users=4 (p90)"
    )
    assert "Spaces, ZeroGPU, MCP" in rec.verdict and "Rule:" in rec.verdict
    labels = [f.label for f in rec.findings]
    assert labels[:2] == ["Gradio's added protocol time per request", "Saturation throughput"]
    assert all(f.rule for f in rec.findings)
    reverse = metrics.recommend(pair("fastapi", "fastapi", 1.5) + pair("gradio", "gradio-file", 1.0))
    assert reverse.verdict.startswith("gradio.Server serves 50% more images/s")


# --- loading a partial run -------------------------------------------------------------------


def test_load_tolerates_a_truncated_line_and_a_failed_run(tmp_path: Path) -> None:
    rows = steady_rows(duration=1.0)
    table = table_of(rows)
    text = table.to_csv(index=False)
    (tmp_path / "requests.csv").write_text(text + "r,cut-off,fastapi,fast", encoding="utf-8")
    (tmp_path / "run.json").write_text(
        json.dumps(
            {
                "run_id": "x",
                "outcome": "failed",
                "outcome_detail": "boom",
                "ended": None,
                "points": [asdict(point_of(rows))],
            }
        )
    )
    run = load_run(tmp_path)
    assert len(run.table) == len(rows)
    assert run.table["t_sent"].dtype == "float64" and str(run.table["gpu_depth"].dtype) == "Int64"
    assert run.table["ok"].dtype == bool and run.table["ok"].all()
    assert run.partial and any("failed: boom" in r for r in run.partial_reasons)
    assert any("half-written" in r for r in run.partial_reasons)
    assert len(run.points) == 1


def test_load_without_run_json(tmp_path: Path) -> None:
    (tmp_path / "requests.csv").write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    run = load_run(tmp_path)
    assert run.table.empty and run.meta == {} and run.partial
