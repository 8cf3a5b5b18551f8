"""reports.metrics.deploy: which server the verdict chooses, the numbers it rests on and the
points each finding and the verdict read, from hand-built point metrics."""

from __future__ import annotations

from typing import Any

import pytest

from reports.metrics.deploy import Choice, Finding, Recommendation, recommend
from reports.metrics.points import PointMetrics
from reports.metrics.rules import TIE_MARGIN
from reports.schema import ScenarioName
from tests.helpers.reports_tables import sweep_point


def series(
    server: str, client: str, *, p90_scale: float = 1.0, rps_scale: float = 1.0, **fields: Any
) -> list[PointMetrics]:
    """A VALID `latency` point and `throughput` points at 1 and 4 users for one server.

    ``p90_scale`` stretches its latencies and wait, ``rps_scale`` its throughput."""
    common: dict[str, Any] = dict(
        server=server,
        client=client,
        wait_s=0.01 * p90_scale,
        pre_s=0.01,
        gpu_s=0.05,
        post_s=0.01,
        protocol_s=0.004 * p90_scale,
        **fields,
    )
    single = 0.07 * p90_scale
    return [
        sweep_point(1, single, scenario=ScenarioName.LATENCY, throughput_rps=14 * rps_scale, **common),
        sweep_point(1, single, throughput_rps=14 * rps_scale, **common),
        sweep_point(4, 0.16 * p90_scale, throughput_rps=24 * rps_scale, **common),
    ]


def by_label(rec: Recommendation) -> dict[str, Finding]:
    return {f.label: f for f in rec.findings}


def test_recommend_nothing_without_valid_points() -> None:
    rec = recommend([sweep_point(1, 0.1, valid=False)])
    assert rec.choice is Choice.NONE and not rec.recommends and not rec.findings
    assert rec.saturation is None and rec.throughput_gain is None


def test_recommend_nothing_without_a_valid_point_on_each_server() -> None:
    rec = recommend(series("fastapi", "fastapi"))
    assert rec.choice is Choice.NONE and rec.pair is None and not rec.findings


def test_faster_fastapi_is_chosen_on_its_numbers() -> None:
    fastapi = series("fastapi", "fastapi")
    gradio = series("gradio", "gradio-file", p90_scale=1.5, rps_scale=1 / 1.5)
    rec = recommend(fastapi + gradio)
    assert rec.choice is Choice.FASTAPI and rec.recommends
    assert rec.pair == ("fastapi", "gradio-file")
    assert rec.throughput_gain == pytest.approx(0.5)
    assert rec.latency_statistic == "p90" and rec.sooner_s == pytest.approx(0.16 * 0.5)
    assert rec.saturation == (fastapi[2], gradio[2])
    assert rec.common == (fastapi[2], gradio[2])  # the highest load both served VALID
    findings = by_label(rec)
    protocol = findings["Gradio's added protocol time per request"]
    assert protocol.points == (fastapi[0], gradio[0])  # the single-user `latency` points
    assert findings["Saturation throughput"].points == (fastapi[2], gradio[2])
    assert all(f.rule and f.text for f in rec.findings)


def test_faster_gradio_is_chosen_on_its_numbers() -> None:
    rec = recommend(
        series("fastapi", "fastapi", p90_scale=1.5, rps_scale=1 / 1.5) + series("gradio", "gradio-file")
    )
    assert rec.choice is Choice.GRADIO
    assert rec.throughput_gain == pytest.approx(1 / 1.5 - 1)
    assert rec.sooner_s == pytest.approx(-0.16 * 0.5)


def test_throughput_within_the_tie_margin_is_a_tie() -> None:
    near = 1 - TIE_MARGIN / 2
    rec = recommend(series("fastapi", "fastapi") + series("gradio", "gradio-file", rps_scale=near))
    assert rec.choice is Choice.TIE and rec.recommends
    assert abs(rec.throughput_gain) < TIE_MARGIN


def test_more_throughput_but_later_answers_is_mixed() -> None:
    rec = recommend(
        series("fastapi", "fastapi", p90_scale=1.5) + series("gradio", "gradio-file", rps_scale=1 / 1.5)
    )
    assert rec.choice is Choice.MIXED and rec.recommends
    assert rec.throughput_gain > TIE_MARGIN and rec.sooner_s < 0


def test_p50_stands_in_where_p90_lacks_samples() -> None:
    fastapi = series("fastapi", "fastapi", p50_s=0.05)
    gradio = series("gradio", "gradio-file", rps_scale=0.5, p50_s=0.08)
    for m in fastapi + gradio:
        m.p90_s = None
    rec = recommend(fastapi + gradio)
    assert rec.choice is Choice.FASTAPI and rec.latency_statistic == "p50"
    assert rec.sooner_s == pytest.approx(0.03)


def test_a_typical_users_client_is_preferred_when_several_are_valid() -> None:
    results = (
        series("fastapi", "fastapi-b64")
        + series("fastapi", "fastapi")
        + series("gradio", "gradio-b64")
        + series("gradio", "gradio-file")
    )
    assert recommend(results).pair == ("fastapi", "gradio-file")
    assert recommend(series("fastapi", "fastapi-b64") + series("gradio", "gradio-b64")).pair == (
        "fastapi-b64",
        "gradio-b64",
    )


def test_naive_control_finding_reads_the_naive_and_locked_points_at_one_load() -> None:
    burst: dict[str, Any] = dict(scenario=ScenarioName.COLLISIONS, load_point="burst=4")
    naive = sweep_point(4, 0.3, server="fastapi-naive", collision_share=0.8, max_gpu_depth=4, **burst)
    locked = sweep_point(4, 0.2, collision_share=0.0, **burst)
    rec = recommend(series("fastapi", "fastapi") + series("gradio", "gradio-file") + [naive, locked])
    (finding,) = [f for f in rec.findings if naive in f.points]
    assert finding.points == (naive, locked)
    without_locked = recommend(series("gradio", "gradio-file") + series("fastapi", "fastapi")[:2] + [naive])
    (alone,) = [f for f in without_locked.findings if naive in f.points]
    assert alone.points == (naive,)
