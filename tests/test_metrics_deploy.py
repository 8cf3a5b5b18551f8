"""reports.metrics.deploy on whole runs with known answers: which server the verdict chooses,
at which load, on which intervals, what it says when nothing can be compared, and the findings
it adds; every sentence symmetric between the servers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from reports.analysis import analyse
from reports.load import load_run
from reports.metrics.deploy import Choice, Finding, Recommendation
from reports.metrics.intervals import T_PAIRED
from reports.schema import RUN_FILE, TABLE_FILE, ScenarioName
from tests.helpers.reports_tables import (
    burst_rows,
    closed_loop_run,
    point_of,
    steady_rows,
    write_run,
)

SWEEP = (1, 2, 4)
DRIFT = (1.0, 1.08, 0.95)  # the shared box slows every server alike in trial 2


def recommendation(path: Path, times: dict[str, float | tuple[float, ...]], **run: object) -> Recommendation:
    """The verdict of a 3-trial run of `throughput` points at 1, 2 and 4 users (and a `latency`
    point) per server, each request of a server taking its time (or its times in turn)."""
    run.setdefault("trials", 3)
    single = {server: t for server, t in times.items() if isinstance(t, float)}
    run_dir = closed_loop_run(
        path,
        {server: dict.fromkeys(SWEEP, t) for server, t in times.items()},
        single_stream=single,
        drift=DRIFT,
        jitter=0.01,
        **run,  # type: ignore[arg-type]
    )
    return analyse(load_run(run_dir)).recommendation


def by_label(rec: Recommendation) -> dict[str, Finding]:
    return {f.label: f for f in rec.findings}


def test_recommend_nothing_without_valid_points(tmp_path: Path) -> None:
    cpu = {(server, ScenarioName.THROUGHPUT, u): 95.0 for server in ("fastapi", "gradio") for u in SWEEP}
    cpu |= {(server, ScenarioName.LATENCY, 1): 95.0 for server in ("fastapi", "gradio")}
    rec = recommendation(tmp_path, {"fastapi": 0.1, "gradio": 0.1}, cpu=cpu)
    assert rec.choice is Choice.NONE and not rec.recommends and not rec.findings


def test_recommend_nothing_without_a_valid_point_on_each_server(tmp_path: Path) -> None:
    rec = recommendation(tmp_path, {"fastapi": 0.1})
    assert rec.choice is Choice.NONE and rec.pair is None and not rec.findings


def test_faster_fastapi_is_chosen_on_paired_intervals(tmp_path: Path) -> None:
    rec = recommendation(tmp_path, {"fastapi": 0.1, "gradio": 0.15})
    assert rec.choice is Choice.FASTAPI and rec.recommends
    assert rec.pair == ("fastapi", "gradio-b64")
    assert [c.load_point for c in rec.comparisons] == ["users=1", "users=2", "users=4"]
    decisive = rec.decisive
    assert decisive is not None and decisive.load_point == "users=4"  # the most load both served
    assert decisive.throughput_ratio is not None and decisive.p90_difference is not None
    assert decisive.throughput_ratio.method == T_PAIRED and decisive.throughput_ratio.n == 3
    assert decisive.throughput_ratio.low > 1.4 and decisive.throughput_ratio.high < 1.6
    assert decisive.p90_difference.low > 0.04  # gradio's p90 is ~50 ms later
    # 1.5x the throughput and ~50 ms sooner, give or take the trials' jitter
    assert re.match(
        r"FastAPI is ahead at users=4: FastAPI serves (4[6-9]|5[0-4])% more images/s", rec.verdict
    )
    assert re.search(r"FastAPI answers (4[5-9]|5[0-5])\.\d ms sooner at p90", rec.verdict)
    findings = by_label(rec)
    assert {"At users=1", "At users=2", "At users=4", "Gradio's added protocol time per request"} <= set(
        findings
    )
    assert findings["At users=4"].points == (decisive.fastapi, decisive.gradio)
    assert all(f.rule and f.text for f in rec.findings)


def test_faster_gradio_is_chosen_alike(tmp_path: Path) -> None:
    rec = recommendation(tmp_path, {"fastapi": 0.15, "gradio": 0.1})
    assert rec.choice is Choice.GRADIO
    assert re.match(
        r"gradio\.Server is ahead at users=4: gradio\.Server serves (4[6-9]|5[0-4])% more images/s",
        rec.verdict,
    )
    assert "Deploy gradio.Server" in rec.verdict


def test_equal_servers_are_a_tie_with_the_intervals_that_show_it(tmp_path: Path) -> None:
    rec = recommendation(tmp_path, {"fastapi": 0.1, "gradio": 0.1})
    assert rec.choice is Choice.TIE and rec.recommends
    assert rec.verdict.startswith("No material difference at users=4: no measurable throughput difference")
    assert re.search(r"fastapi/gradio throughput ratio (0\.9[7-9]|1\.0[0-3]), 95% CI", rec.verdict)
    assert "--repeat" in rec.verdict  # what would resolve a smaller difference


def test_more_throughput_but_later_answers_is_mixed(tmp_path: Path) -> None:
    # fastapi: four fast requests and a slow one (mean 104 ms, p90 200 ms); gradio: 120 ms each
    rec = recommendation(tmp_path, {"fastapi": (0.08, 0.08, 0.08, 0.08, 0.2), "gradio": 0.12})
    assert rec.choice is Choice.MIXED, rec.verdict
    assert re.search(r"FastAPI serves 1[3-8]% more images/s", rec.verdict)
    assert re.search(r"gradio\.Server answers (7[5-9]|8[0-5])\.\d ms sooner at p90", rec.verdict)


def test_a_typical_users_client_is_preferred_when_several_are_valid(tmp_path: Path) -> None:
    times = {
        "fastapi/fastapi-b64": 0.1,
        "fastapi/fastapi": 0.1,
        "gradio/gradio-b64": 0.1,
        "gradio/gradio-file": 0.1,
    }
    rec = analyse(load_run(closed_loop_run(tmp_path, {k: {2: t} for k, t in times.items()}))).recommendation
    assert rec.pair == ("fastapi", "gradio-file")


def test_nothing_compared_says_what_is_missing(tmp_path: Path) -> None:
    cpu = {("gradio", ScenarioName.THROUGHPUT, u): 95.0 for u in SWEEP}
    rec = recommendation(tmp_path, {"fastapi": 0.1, "gradio": 0.1}, cpu=cpu)
    assert rec.choice is Choice.NONE and not rec.comparisons
    assert rec.verdict.startswith(
        "Nothing can be compared, so nothing is recommended: users=1: gradio INVALID"
    )
    assert "trial 1: load process averaged 95% CPU" in rec.verdict
    assert by_label(rec)["Loads not compared"].text.count("gradio INVALID") == 3


def test_one_trial_says_its_intervals_hold_no_drift(tmp_path: Path) -> None:
    rec = recommendation(tmp_path, {"fastapi": 0.1, "gradio": 0.15}, trials=1)
    assert rec.decisive is not None and rec.decisive.one_trial
    assert "One trial per point" in rec.verdict


# --- issue 9: the verdict on whole runs with known answers --------------------------------------

SOONER_BY_A_NEGATIVE = re.compile(r"-\s?\d[\d.,]*\s?ms sooner")


def texts(rec: Recommendation) -> list[str]:
    return [rec.verdict, *(f.text for f in rec.findings)]


def test_servers_are_compared_only_at_loads_both_served_validly(tmp_path: Path) -> None:
    """Defect 3: gradio INVALID at users=4 leaves users=2 (a tie) as the evidence, never
    fastapi's users=4 against gradio's users=2."""
    same = {1: 0.1, 2: 0.1, 4: 0.1}
    run_dir = closed_loop_run(
        tmp_path / "run",
        {"fastapi": same, "gradio": same},
        cpu={("gradio", ScenarioName.THROUGHPUT, 4): 95.0},
    )
    rec = analyse(load_run(run_dir)).recommendation
    assert rec.choice is Choice.TIE, rec.verdict
    assert "users=2" in rec.verdict


def test_nothing_is_recommended_on_thin_evidence(tmp_path: Path) -> None:
    """Defect 3: a load where the pooled sample is below the p90 floor is not compared."""
    run_dir = closed_loop_run(tmp_path / "run", {"fastapi": {2: 0.1}, "gradio": {2: 0.15}}, duration=3.0)
    rec = analyse(load_run(run_dir)).recommendation
    assert rec.choice is Choice.NONE and not rec.recommends
    assert "p90" in rec.verdict


def test_naive_control_ratio_uses_burst_throughput(tmp_path: Path) -> None:
    """Defect 4: naive/locked throughput from images ÷ burst makespan, not ÷ wall time."""
    rows = steady_rows(duration=10.0, server="fastapi", client="fastapi")
    rows += steady_rows(duration=10.0, t0=20.0, server="gradio", client="gradio-b64")
    points = [point_of(rows[:100]), point_of(rows[100:], t_start=20.0, t_end=30.0)]
    for server, makespan, t0 in (("fastapi", 0.4, 40.0), ("fastapi-naive", 0.2, 60.0)):
        bursts = burst_rows([makespan] * 20, size=4, gap=0.3, t0=t0, server=server, client="fastapi")
        rows += bursts
        points.append(point_of(bursts, t_start=t0, t_end=max(r["t_done"] for r in bursts)))
    rec = analyse(load_run(write_run(tmp_path / "run", rows, points))).recommendation
    (naive,) = [f for f in rec.findings if "naive" in f.label]
    assert "naive/locked throughput ratio 2.00" in naive.text, naive.text


def test_the_verdict_is_symmetric_between_the_servers(tmp_path: Path) -> None:
    """Defect 8: gradio 5.2% faster and fastapi 5.2% faster are judged alike, and no number
    is ever 'sooner' by a negative amount."""
    fast, slow = {1: 0.1 / 1.052, 2: 0.1 / 1.052}, {1: 0.1, 2: 0.1}
    gradio_faster = analyse(load_run(closed_loop_run(tmp_path / "a", {"fastapi": slow, "gradio": fast})))
    fastapi_faster = analyse(load_run(closed_loop_run(tmp_path / "b", {"fastapi": fast, "gradio": slow})))
    choices = (gradio_faster.recommendation.choice, fastapi_faster.recommendation.choice)
    assert choices in {(Choice.TIE, Choice.TIE), (Choice.GRADIO, Choice.FASTAPI)}, choices
    slightly = {1: 0.1 / 1.03, 2: 0.1 / 1.03}
    tie = analyse(load_run(closed_loop_run(tmp_path / "c", {"fastapi": slow, "gradio": slightly})))
    for rec in (gradio_faster.recommendation, fastapi_faster.recommendation, tie.recommendation):
        assert not any(SOONER_BY_A_NEGATIVE.search(text) for text in texts(rec)), texts(rec)


def test_the_lock_scope_is_read_from_the_run(tmp_path: Path) -> None:
    """Defect 8: a `--lock-scope request` run never says the FastAPI lock held the GPU stage only."""
    sweep = {1: 0.1, 2: 0.1}
    run_dir = closed_loop_run(
        tmp_path / "run",
        {"fastapi": sweep, "gradio": sweep},
        servers={"fastapi": {"lock_scope": "request"}, "gradio": {}},
    )
    rec = analyse(load_run(run_dir)).recommendation
    assert not any("gpu only" in text for text in texts(rec))
    assert any("lock-scope request" in text for text in texts(rec)), texts(rec)


def test_a_load_whose_trials_do_not_pair_is_not_compared(tmp_path: Path) -> None:
    run_dir = closed_loop_run(tmp_path, {"fastapi": {2: 0.1, 4: 0.1}, "gradio": {2: 0.1, 4: 0.1}}, trials=3)
    meta = json.loads((run_dir / RUN_FILE).read_text())
    gone = {(p["server"], p["load_point"], p["trial"]) for p in meta["points"]} & {
        ("gradio", "users=4", 2),
        ("gradio", "users=4", 3),
    }
    meta["points"] = [p for p in meta["points"] if (p["server"], p["load_point"], p["trial"]) not in gone]
    (run_dir / RUN_FILE).write_text(json.dumps(meta))
    table = pd.read_csv(run_dir / TABLE_FILE, dtype=str, keep_default_na=False)
    rows = zip(table["server"], table["load_point"], table["trial"].astype(int), strict=True)
    keep = [row not in gone for row in rows]
    table[keep].to_csv(run_dir / TABLE_FILE, index=False)
    rec = analyse(load_run(run_dir)).recommendation
    assert [c.load_point for c in rec.comparisons] == ["users=2"]
    assert rec.missing == ["users=4: the trials do not pair (fastapi 3, gradio 1 trials)"]
    assert rec.decisive is not None and rec.decisive.load_point == "users=2"


def test_on_the_cpu_the_machines_speed_is_not_credited_to_a_server(tmp_path: Path) -> None:
    """The same model call took 1.2x as long while gradio ran (a CPU's speed drifts by that much
    on a shared machine): as measured FastAPI is ahead; on the CPU, brought to their common model
    speed, the frameworks tie, and the verdict says how far the model calls differed."""
    times: dict[str, float | tuple[float, ...]] = {"fastapi": 0.1, "gradio": 0.12}
    as_measured = recommendation(tmp_path / "simulated", times)
    assert as_measured.choice is Choice.FASTAPI
    assert as_measured.decisive is not None and not as_measured.decisive.common_model_speed
    cpu = {"backend": "u2netp", "device": "cpu", "weights": "real"}
    rec = recommendation(tmp_path / "cpu", times, model=cpu)
    assert rec.choice is Choice.TIE, rec.verdict
    decisive = rec.decisive
    assert decisive is not None and decisive.common_model_speed
    assert decisive.model_time_ratio is not None and decisive.model_time_ratio.low > 1.1
    assert decisive.throughput_ratio is not None and 0.95 < decisive.throughput_ratio.estimate < 1.05
    assert re.search(r"the model call took 1\.2\d× as long in gradio's process", rec.verdict)
    assert rec.verdict.endswith("on the CPU, at the pair's common model speed.")
