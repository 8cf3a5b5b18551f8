"""The abandon scenario: open loop above capacity with half the clients giving up at a timeout,
end to end on sim (a real ``gvf run``: the servers see the clients go, the report's "Abandoned
requests" section gives goodput and wasted GPU seconds per server with their intervals), and its
metrics on hand-built rows whose answers are known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loadtests.scenarios import AbandonScenario, Phase, give_ups
from reports.analysis import analyse
from reports.load import load_run, typed_table
from reports.metrics.abandon import wasted_gpu
from reports.metrics.intervals import T_TRIALS
from reports.metrics.points import point_metrics
from reports.metrics.rules import ValidityRules
from reports.schema import ABANDONED, COLUMNS, PointRecord, ScenarioName
from tests.helpers.runs import gvf_run


def test_abandon_run_reports_goodput_and_wasted_gpu_per_server(tmp_path: Path) -> None:
    # a 60 ms simulated GPU: every server's capacity is its GPU stage, so twice the fastest
    # single-stream rate overloads all three and half the clients give up at 4 single-stream latencies
    args = ("--profile", "smoke", "--scenarios", "abandon", "--repeat", "2", "--server-arg=--sim-ms=60")
    run_dir = gvf_run(tmp_path, *args, timeout_s=400)
    run = load_run(run_dir)
    table = run.table[run.table["scenario"] == ScenarioName.ABANDON]
    gone = table[table["error"].str.startswith(f"{ABANDONED}:")]
    (give_up_s,) = {p.give_up_s for p in run.points if p.scenario == ScenarioName.ABANDON}
    assert give_up_s and {p.give_up_share for p in run.points if p.give_up_s} == {0.5}
    # each gave up at its timeout, counted from its scheduled time
    waited = gone["t_done"] - gone["t_scheduled"]
    assert (waited >= give_up_s - 0.01).all() and (waited < give_up_s + 1.0).all(), waited.describe()
    for server in ("gradio", "fastapi"):
        own = gone[gone["server"] == server]
        # the server saw most of them go: 499, and for those still queued no GPU stage at all
        seen_leaving = (own["server_status"] == 499).fillna(False).astype(bool)
        assert len(own) and seen_leaving.mean() > 0.75, own["server_status"].value_counts()
        assert own["t_gpu_start"].isna().any(), f"{server} ran the GPU stage of every abandoned request"
        # the rest had run their GPU stage and were answered (200) as their clients left (gradio
        # still encodes and streams a result after its function returns)
        answered = own[~seen_leaving]
        assert (answered["server_status"] == 200).all(), answered["server_status"].value_counts()
        assert answered["t_gpu_end"].notna().all(), answered

    summaries = {a.server: a for a in analyse(run).abandon}
    assert set(summaries) == {"gradio", "fastapi", "fastapi-naive"}
    for a in summaries.values():
        assert a.n_trials == 2 and a.give_up_s == give_up_s and a.gave_up is not None
        assert a.goodput is not None and a.goodput.method == T_TRIALS and a.goodput.estimate > 0
        assert a.wasted_gpu_s is not None and a.wasted_gpu_s.method == T_TRIALS
        # goodput is delivered images only: never above the rate offered
        assert a.goodput.estimate <= 1.25 * (a.rate or 0)
    # without a lock every call is already on the (shared) GPU when its client leaves
    naive = summaries["fastapi-naive"]
    assert naive.ran_for_nobody > 0 and naive.wasted_gpu_s is not None and naive.wasted_gpu_s.estimate > 0
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "### Abandoned requests" in summary and "judged on goodput, not latency" in summary
    assert (run_dir / "report" / "figures" / "abandon.png").exists()


def test_the_same_requests_give_up_on_every_server_of_a_trial() -> None:
    phase = Phase("abandon", "rate=10.00/s", None, 10.0, give_up_s=0.4, give_up_share=0.5)
    chosen = give_ups(phase, 40, seed=7)
    assert chosen == give_ups(phase, 40, seed=7) and chosen != give_ups(phase, 40, seed=8)
    assert chosen.count(0.4) == 20 and chosen.count(None) == 20
    assert give_ups(Phase("throughput", "users=1", 1), 3, 7) == [None] * 3
    everyone = Phase("throughput", "users=1", 1, give_up_s=0.2)
    assert give_ups(everyone, 3, 7) == [0.2] * 3
    (point,) = AbandonScenario(client_timeout_s=0.3).phases(ValidityRules(), fastest_rate=10.0)
    assert point.give_up_s == 0.3 and point.rate == 20.0
    (derived,) = AbandonScenario().phases(ValidityRules(), fastest_rate=10.0)
    assert derived.give_up_s == pytest.approx(0.4)  # four single-stream latencies


def _rows(spans: list[tuple[float, float] | None], ok: list[bool], scenario: str = "abandon") -> pd.DataFrame:
    raw = pd.DataFrame({name: [""] * len(ok) for name in COLUMNS})
    raw["run_id"], raw["server"], raw["client"], raw["scenario"] = "r", "fastapi-naive", "fastapi", scenario
    raw["load_point"], raw["rate"], raw["trial"] = "rate=10.00/s", "10", "1"
    raw["t_scheduled"] = [str(100 + 0.1 * i) for i in range(len(ok))]
    raw["t_sent"] = raw["t_scheduled"]
    raw["t_done"] = [str(100.5 + 0.1 * i) for i in range(len(ok))]
    raw["ok"] = ["True" if good else "False" for good in ok]
    raw["status"] = ["200" if good else "0" for good in ok]
    raw["error"] = ["" if good else f"{ABANDONED}: gave up" for good in ok]
    raw["t_gpu_start"] = ["" if span is None else str(span[0]) for span in spans]
    raw["t_gpu_end"] = ["" if span is None else str(span[1]) for span in spans]
    return typed_table(raw)


def test_wasted_gpu_shares_overlapping_calls() -> None:
    # two delivered calls overlap an abandoned one: the device time is shared, and the shares
    # add up to the time the device was busy (3 s), not to the spans' 4 s
    rows = _rows([(0.0, 2.0), (1.0, 3.0), None], [True, False, False])
    device = wasted_gpu(rows)
    assert device.shares == pytest.approx([1.5, 1.5, 0.0])
    assert device.busy_s == pytest.approx(3.0) and device.wasted_s == pytest.approx(1.5)
    assert list(device.undelivered) == [False, True, True]


def test_abandoned_requests_do_not_count_against_the_error_rate_of_an_abandon_point() -> None:
    ok = [True] * 30 + [False] * 10  # the last ten gave up: all inside the measured window
    spans: list[tuple[float, float] | None] = [(100 + 0.1 * i, 100.05 + 0.1 * i) for i in range(40)]
    point = PointRecord(
        "fastapi-naive", "fastapi", "abandon", "rate=10.00/s", None, 10.0, 100.0, 104.0, 112.0, 5.0, None
    )
    (abandon,) = point_metrics(_rows(spans, ok), [point], ValidityRules())
    assert abandon.n_abandoned == 10 and abandon.error_rate == 0.0
    assert not any("error rate" in reason for reason in abandon.reasons), abandon.reasons
    assert any("judged on goodput" in note for note in abandon.notes)
    # the same rows in another scenario: a client timeout there is a failure like any other
    elsewhere = PointRecord(**{**point.__dict__, "scenario": "open-loop"})
    (open_loop,) = point_metrics(_rows(spans, ok, "open-loop"), [elsewhere], ValidityRules())
    assert open_loop.error_rate == pytest.approx(10 / open_loop.n_measured)
    assert any("error rate" in reason and "abandoned [0]: 10" in reason for reason in open_loop.reasons)
