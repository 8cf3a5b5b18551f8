"""What MCP costs and each server's footprint, on runs with known answers: the added time per
call and where it goes, the throughput ratio at saturation, the session set-up, Gradio's
loopback hop from its profiler, what is not compared and why, and both documents' sections."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from reports import build
from reports.analysis import analyse
from reports.features import FOOTPRINT_HEADING, MCP_HEADING
from reports.load import load_run
from reports.metrics.footprint import difference, footprints
from reports.metrics.intervals import BOOTSTRAP_REQUESTS, T_PAIRED
from reports.schema import PROFILING_FILE, PointRecord, ScenarioName
from tests.helpers.reports_tables import point_of, steady_rows, write_run

# seconds per request of each (server, client) at every load: MCP adds 50 ms on gradio (all of it
# after the function returns: protocol) and 5 ms on fastapi
TIMES = {
    ("gradio", "gradio-b64"): 0.100,
    ("gradio", "mcp"): 0.150,
    ("fastapi", "fastapi-b64"): 0.080,
    ("fastapi", "mcp"): 0.085,
}
DRIFT = (1.0, 1.06, 0.96)  # the shared box slows every pair alike in a trial
HOP_S = 0.010  # gradio's MCP rows: the ledger's wait (t_admit − t_recv) less Gradio's queue wait
SETUP_S = [0.004, 0.005, 0.0045, 0.006, 0.0042, 0.0048, 0.0051, 0.0043, 0.0047, 0.0049]
FOOTPRINT = {
    "gradio": {
        "startup_s": 5.2,
        "rss_idle_bytes": 210_000_000,
        "rss_warm_bytes": 214_000_000,
        "rss_end_bytes": 230_000_000,
        "requests_served": 300,
    },
    "fastapi": {
        "startup_s": 1.1,
        "rss_idle_bytes": 97_000_000,
        "rss_warm_bytes": 99_000_000,
        "rss_end_bytes": 104_000_000,
        "requests_served": 310,
    },
}


def mcp_run(path: Path, *, invalid: tuple[str, str, int] | None = None, trials: int = 3) -> Path:
    """Three trials of the `mcp` scenario (users 1 and 4) on both servers, interleaved as `gvf
    run` runs them; ``invalid``: the (server, client, users) whose load process ran at 95% CPU."""
    rows: list[dict[str, Any]] = []
    points: list[PointRecord] = []
    t0 = 0.0
    for trial in range(1, trials + 1):
        for users in (1, 4):
            for (server, client), took in TIMES.items():
                rest = TIMES[(server, next(c for s, c in TIMES if s == server and c != "mcp"))]
                point_rows = steady_rows(
                    users=users,
                    duration=10.0,
                    t0=t0,
                    service=took * DRIFT[trial - 1],
                    protocol=0.004 + (took - rest) * DRIFT[trial - 1],
                    server=server,
                    client=client,
                    scenario=ScenarioName.MCP,
                    trial=trial,
                    endpoint="mcp:remove_background" if client == "mcp" else "segment_b64",
                    event_id=f"e{len(rows)}" if (server, client) == ("gradio", "mcp") else "",
                )
                for i, row in enumerate(point_rows):
                    row["request_id"] = f"{server}-{client}-{trial}-{users}-{i}"
                    if row["event_id"]:
                        row["event_id"] += f"-{i}"
                cpu = 95.0 if invalid == (server, client, users) else 20.0
                points.append(
                    point_of(point_rows, t_start=t0, t_end=t0 + 10.0, load_cpu_percent=cpu, trial=trial)
                )
                rows += point_rows
                t0 += 11.0
    run_dir = write_run(
        path,
        rows,
        points,
        repeat=trials,
        client_setup={
            "gradio/mcp": {"endpoint": "/gradio_api/mcp/", "setup_s": SETUP_S, "setup": "2 HTTP requests"},
            "fastapi/mcp": {"endpoint": "/mcp", "setup_s": SETUP_S, "setup": "2 HTTP requests"},
        },
        servers={server: {"footprint": footprint} for server, footprint in FOOTPRINT.items()},
    )
    traces = [
        {
            "event_id": row["event_id"],
            "queue_wait_ms": ((row["t_admit"] - row["t_recv"]) - HOP_S) * 1e3,
            "fn_call_ms": (row["t_send"] - row["t_admit"]) * 1e3,
        }
        for row in rows
        if row["event_id"]
    ]
    (run_dir / PROFILING_FILE).write_text("".join(json.dumps(t) + "\n" for t in traces), encoding="utf-8")
    return run_dir


def test_added_time_throughput_ratio_setup_and_the_loopback_hop(tmp_path: Path) -> None:
    analysis = analyse(load_run(mcp_run(tmp_path / "run")))
    gradio, fastapi = analysis.mcp
    assert (gradio.server, gradio.rest_client, fastapi.server, fastapi.rest_client) == (
        "gradio",
        "gradio-b64",
        "fastapi",
        "fastapi-b64",
    )
    for cost, added in ((gradio, 0.050), (fastapi, 0.005)):
        assert cost.single is not None and cost.single.load_point == "users=1" and not cost.single.why_not
        assert cost.saturating is not None and cost.saturating.load_point == "users=4"
        assert cost.added_p50 is not None and cost.added_p50.method == T_PAIRED and cost.added_p50.n == 3
        assert cost.added_p50.low < added < cost.added_p50.high
        assert cost.added_p50.estimate == pytest.approx(added, rel=0.1)
        # all of it after the function returned: protocol time, no extra wait
        assert cost.added_protocol is not None and cost.added_protocol.estimate == pytest.approx(
            added, rel=0.1
        )
        assert cost.added_wait is not None and abs(cost.added_wait.estimate) < 1e-3
        # every request takes its time and users do not wait: throughput ratio = REST / MCP time
        rest_time = TIMES[(cost.server, cost.rest_client)]
        expected = rest_time / (rest_time + added)
        assert cost.throughput_ratio is not None and cost.throughput_ratio.method == T_PAIRED
        assert cost.throughput_ratio.estimate == pytest.approx(expected, rel=0.03)
        assert cost.setup is not None and cost.setup.method == BOOTSTRAP_REQUESTS and cost.setup.n == 10
        assert cost.setup.estimate == pytest.approx(0.00475)
        assert cost.setup.low <= cost.setup.estimate <= cost.setup.high
    # Gradio's profiler sees the hop into its own queue, and does not call it a disagreement
    assert gradio.loopback_hop_s == pytest.approx(HOP_S, abs=1e-4) and fastapi.loopback_hop_s is None
    (check,) = [c for c in analysis.profiler if c.client == "mcp" and c.load_point == "users=1"]
    assert "loopback hop" in check.note and "disagrees" not in check.note


def test_an_invalid_point_is_not_compared_and_says_why(tmp_path: Path) -> None:
    analysis = analyse(load_run(mcp_run(tmp_path / "run", invalid=("fastapi", "mcp", 4))))
    gradio, fastapi = analysis.mcp
    assert gradio.throughput_ratio is not None
    assert fastapi.added_p50 is not None and fastapi.throughput_ratio is None
    assert fastapi.saturating is not None and fastapi.saturating.why_not.startswith("MCP INVALID (trial 1:")
    assert "95% CPU" in fastapi.saturating.why_not


def test_footprints_from_run_json_and_the_gradio_less_fastapi_difference(tmp_path: Path) -> None:
    found = footprints(load_run(mcp_run(tmp_path / "run", trials=1)).meta)
    assert [f.server for f in found] == ["gradio", "fastapi"]
    extra = difference(found[0], found[1])
    assert extra.server == "gradio − fastapi"
    assert (extra.startup_s, extra.rss_idle_bytes, extra.rss_end_bytes) == pytest.approx(
        (4.1, 113_000_000, 126_000_000)
    )
    assert footprints({"servers": {"target": {"url": "http://x"}}}) == []  # --target-url: none


def test_both_documents_show_what_mcp_costs_and_the_footprint(tmp_path: Path) -> None:
    run_dir = mcp_run(tmp_path / "run")
    text = build.build_report([run_dir]).read_text(encoding="utf-8")
    summary = (run_dir / "report" / build.MARKDOWN_FILE).read_text(encoding="utf-8")
    order = [
        text.index("<h2>The evidence</h2>"),
        text.index(f"<h2>{MCP_HEADING}</h2>"),
        text.index(f"<h2>{FOOTPRINT_HEADING}</h2>"),
        text.index("<h2>Load points</h2>"),
    ]
    assert order == sorted(order)
    for document in (html.unescape(text), summary):
        assert "gradio: at users=1 a tools/call adds 50." in document
        assert "fastapi: at users=1 a tools/call adds 5." in document
        assert "Where the cost goes on gradio" in document and "loopback hop" in document
        assert "Gradio's own profiler puts the hop at 10.0 ms" in document
        assert "| gradio − fastapi | +4.10 | +113 | +115 | +126 | — |" in summary
        assert "gvf export-space DIR" in document and "--target-url" in document
