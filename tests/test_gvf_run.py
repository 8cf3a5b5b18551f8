"""``gvf run`` end to end on ``sim``: the table, run.json, --target-url, --workers, and how a run
ends when its server dies or it is interrupted (partial data kept, no process left behind)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from loadtests.scenarios import PROFILES
from reports.analysis import analyse
from reports.load import LoadedRun, load_run
from reports.metrics.points import point_metrics
from reports.metrics.rules import ValidityRules
from reports.schema import COLUMNS, PROFILING_FILE, RUN_FILE, TABLE_FILE
from tests.helpers.runs import assert_all_ok_but_mcp_drops, assert_tool_call_rows
from tests.helpers.servers import sim_server

GVF = [sys.executable, "-m", "loadtests.cli"]
RUN_KEYS = {
    "run_id",
    "profile",
    "outcome",
    "outcome_detail",
    "started",
    "ended",
    "git_sha",
    "versions",
    "host",
    "model",
    "servers",
    "load_generator",
    "scenarios",
    "seed",
    "validity",
    "points",
    "target_url",
    "repeat",
    "trial_order",
    "trial_order_rule",
}


def _gvf(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GVF, *args], capture_output=True, text=True, timeout=timeout, check=False)


def _smoke_run(out: Path, *args: str, timeout: float = 120) -> LoadedRun:
    """``gvf run --profile smoke ARGS`` without a report; the run it made, once it succeeded."""
    done = _gvf("run", "--profile", "smoke", "--out", str(out), "--no-report", *args, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_run(_only_run(out))


def _only_run(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def _group_alive(pgid: int) -> bool:
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid:
                return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def test_smoke_run_writes_table_and_run_json(tmp_path: Path) -> None:
    run = _smoke_run(tmp_path, "--servers", "fastapi")
    header = (run.path / TABLE_FILE).read_text().splitlines()[0].split(",")
    assert tuple(header) == COLUMNS
    assert not run.partial, run.partial_reasons
    assert set(run.meta) >= RUN_KEYS and run.meta["outcome"] == "complete"
    assert run.meta["model"]["backend"] == "sim" and run.meta["servers"]["fastapi"]["exit"]
    table = run.table
    expected_points = {
        (scenario, phase.label)
        for scenario in ("latency", "collisions", "throughput", "spike")
        for phase in PROFILES["smoke"].scenarios[scenario].phases(ValidityRules())
    }
    seen = set(zip(table["scenario"], table["load_point"], strict=True))
    assert expected_points <= seen
    assert {p.scenario for p in run.points} == set(PROFILES["smoke"].default_scenarios)
    for point in run.points:
        rows = table[(table["scenario"] == point.scenario) & (table["load_point"] == point.load_point)]
        assert len(rows) > 0 and point.load_cpu_percent is not None
    assert table["ok"].all() and table["request_id"].is_unique
    assert table["t_recv"].notna().all()  # every row joined with its ledger row
    assert (table["t_sent"] <= table["t_recv"]).all() and (table["t_send"] <= table["t_done"]).all()
    open_loop = table[table["scenario"] == "open-loop"]
    assert open_loop["t_scheduled"].notna().all() and open_loop["send_lag"].notna().all()


def test_repeat_measures_every_point_in_interleaved_trials(tmp_path: Path) -> None:
    # every scenario with one client per server (mcp brings two: its own test covers it)
    scenarios = "latency,collisions,throughput,open-loop,spike"
    run = _smoke_run(
        tmp_path, "--servers", "gradio,fastapi", "--scenarios", scenarios, "--repeat", "2", timeout=300
    )
    assert not run.partial, run.partial_reasons
    assert run.meta["repeat"] == 2 and run.meta["trial_order_rule"] == "interleaved"
    table = run.table
    assert table["ok"].all() and table["t_recv"].notna().all() and table["request_id"].is_unique
    for key, rows in table.groupby(["server", "scenario", "load_point"]):
        assert set(rows["trial"]) == {1, 2}, key
    points = {(p.server, p.scenario, p.load_point, p.trial): p for p in run.points}
    assert len(points) == len(run.points) == 2 * len(table.groupby(["server", "scenario", "load_point"]))
    assert all(p.backlog == 0 for p in run.points)
    # gradio's rows carry the event id of their queued call, which joins Gradio's profiler trace
    # (collected by default) of the same point and trial; FastAPI has none
    gradio = table[table["server"] == "gradio"]
    assert (table.loc[table["server"] == "fastapi", "event_id"] == "").all()
    assert run.meta["gradio_profiling"] == {"enabled": True, "file": PROFILING_FILE}
    traces = [json.loads(line) for line in (run.path / PROFILING_FILE).read_text().splitlines()]
    by_event = {trace["event_id"]: trace for trace in traces if trace["fn_name"] == "segment_b64"}
    assert set(gradio["event_id"]) <= set(by_event)
    for row in gradio.itertuples():
        trace = by_event[row.event_id]
        assert (trace["server"], trace["scenario"], trace["trial"]) == ("gradio", row.scenario, row.trial)
        # a spike's phases follow one another under load: a request sent just before a phase
        # boundary can be queued just after it (the event id joins it exactly)
        assert trace["load_point"] == row.load_point or row.scenario == "spike"
    # trial-major rounds, each on both servers in the same order, as run.json says they ran
    rounds = run.meta["trial_order"]
    assert [r["trial"] for r in rounds] == sorted(r["trial"] for r in rounds)
    assert all(r["order"] == ["gradio/gradio-b64", "fastapi/fastapi"] for r in rounds)
    for entry in rounds:
        starts = [
            points[(pair.split("/")[0], entry["scenario"], entry["load_points"][0], entry["trial"])].t_start
            for pair in entry["order"]
        ]
        assert starts == sorted(starts) and starts[0] >= entry["t_start"]
    # a spike is one unit: its chained phases run back to back on one server
    spike = [r for r in rounds if r["scenario"] == "spike"]
    assert [len(r["load_points"]) for r in spike] == [3, 3]
    # each server started once, and its rows are all from that one process
    assert all(info["log"].endswith(f"{label}.log") for label, info in run.meta["servers"].items())


def test_a_round_that_does_not_fit_the_budget_is_skipped_on_every_server(tmp_path: Path) -> None:
    # the servers' startups alone exceed 1 s: only the first round (no rate known yet, so no
    # prediction) runs; every later one is skipped on both servers, never on one only
    run = _smoke_run(
        tmp_path,
        *("--servers", "fastapi,fastapi-naive", "--scenarios", "latency,throughput", "--repeat", "2"),
        *("--trial-order", "random", "--seed", "3", "--budget-s", "1"),
    )
    assert run.meta["trial_order_rule"] == "random"
    assert run.meta["gradio_profiling"] == {"enabled": True, "file": None}  # no gradio server ran
    (ran,) = run.meta["trial_order"]
    assert (ran["trial"], ran["scenario"]) == (1, "latency")
    assert sorted(ran["order"]) == ["fastapi-naive/fastapi", "fastapi/fastapi"]
    assert {(p.server, p.scenario, p.trial) for p in run.points} == {
        ("fastapi", "latency", 1),
        ("fastapi-naive", "latency", 1),
    }
    skipped = run.meta["skipped"]
    assert len(skipped) == 2 + 2 + 1  # throughput's two points in each trial, latency's second trial
    for entry in skipped:
        assert "fastapi/fastapi" in entry["what"] and "fastapi-naive/fastapi" in entry["what"]
        assert "does not fit" in entry["why"]


def test_target_url_runs_without_ledger(tmp_path: Path) -> None:
    with sim_server("fastapi", tmp_path) as server:
        done = _gvf(
            "run",
            "--profile",
            "smoke",
            "--target-url",
            server.url,
            "--scenarios",
            "latency,collisions",
            "--out",
            str(tmp_path / "runs"),
            "--no-report",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert server.alive  # a server gvf did not start is not stopped by it
    run = load_run(_only_run(tmp_path / "runs"))
    assert run.meta["target_url"] == server.url and run.meta["outcome"] == "complete"
    assert len(run.table) > 0 and (run.table["server"] == "target").all()
    assert run.table["ok"].all() and run.table["t_recv"].isna().all()


def _start_gvf(out: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*GVF, "run", "--profile", "smoke", "--servers", "fastapi", "--out", str(out), "--no-report", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _wait_for_rows(out: Path, rows: int, timeout_s: float = 60) -> tuple[Path, int]:
    """The run directory and the server's pid once the table holds ``rows`` rows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run_dir in out.glob("*"):
            try:
                meta = json.loads((run_dir / RUN_FILE).read_text())
                lines = (run_dir / TABLE_FILE).read_text().count("\n") - 1
            except (OSError, json.JSONDecodeError):
                continue
            pid = meta.get("servers", {}).get("fastapi", {}).get("pid")
            if pid and lines >= rows:
                return run_dir, int(pid)
        time.sleep(0.05)
    raise AssertionError("the run never produced rows")


@pytest.mark.parametrize("how", ["server killed", "ctrl-c"])
def test_run_that_ends_early_keeps_its_rows(tmp_path: Path, how: str) -> None:
    gvf = _start_gvf(tmp_path, "--scenarios", "throughput,spike")
    try:
        run_dir, server_pid = _wait_for_rows(tmp_path, 10)
        if how == "server killed":
            os.killpg(server_pid, signal.SIGKILL)
        else:
            gvf.send_signal(signal.SIGINT)
        code = gvf.wait(timeout=60)
    finally:
        if gvf.poll() is None:
            os.killpg(gvf.pid, signal.SIGKILL)
            gvf.wait()
    assert code != 0
    run = load_run(run_dir)
    assert run.meta["outcome"] == ("failed" if how == "server killed" else "interrupted")
    assert run.meta["outcome_detail"] and run.meta["ended"]
    assert len(run.table) >= 10
    assert not _group_alive(server_pid) and not _group_alive(gvf.pid)


@pytest.mark.slow
def test_smoke_run_all_servers_with_report(smoke_run: Path) -> None:
    run = load_run(smoke_run)
    assert set(run.table["server"]) == {"gradio", "fastapi", "fastapi-naive"}
    assert set(run.table["client"]) == {"gradio-b64", "fastapi", "fastapi-b64", "mcp"}
    # the mcp scenario's own clients run it, on gradio and fastapi only (the smoke profile's choice)
    mcp = run.table[run.table["scenario"] == "mcp"]
    assert set(zip(mcp["server"], mcp["client"], strict=True)) == {
        ("gradio", "gradio-b64"),
        ("gradio", "mcp"),
        ("fastapi", "fastapi-b64"),
        ("fastapi", "mcp"),
    }
    assert set(run.table.loc[run.table["scenario"] != "mcp", "client"]) == {"gradio-b64", "fastapi"}
    assert_all_ok_but_mcp_drops(run.table)
    assert run.table["t_recv"].notna().all()
    assert (smoke_run / "report" / "report.html").exists()


@pytest.mark.slow
def test_workers_rows_reach_the_table(tmp_path: Path) -> None:
    args = ("--servers", "fastapi", "--scenarios", "throughput", "--workers", "2")
    run = _smoke_run(tmp_path, *args, timeout=180)
    assert "local" not in set(run.table["worker"])
    # each point (a trial unit) runs on its own two worker processes
    for load_point, rows in run.table.groupby("load_point"):
        assert 1 <= rows["worker"].nunique() <= 2, load_point
    assert run.table.loc[run.table["load_point"] == "users=4", "worker"].nunique() == 2
    assert run.table["ok"].all() and run.table["t_recv"].notna().all()


def test_server_args_by_kind_and_added_latency(tmp_path: Path) -> None:
    run = _smoke_run(
        tmp_path,
        *("--servers", "fastapi,fastapi-naive", "--scenarios", "open-loop"),
        *("--server-arg=fastapi:--lock-scope=request", "--server-arg=fastapi:--concurrency=2"),
        "--server-arg=--png-level=2",
    )
    servers = run.meta["servers"]
    assert servers["fastapi"]["lock_scope"] == "request" and servers["fastapi"]["concurrency"] == 2
    naive = servers["fastapi-naive"]["command"]
    assert "--lock-scope=request" not in naive and "--png-level=2" in naive
    # the latency pass that open-loop needs is recorded as added, with its parameters
    assert [entry["name"] for entry in run.meta["added_scenarios"]] == ["latency"]
    assert run.meta["skipped"] == [] and set(run.meta["scenarios"]) == {"latency", "open-loop"}
    # the single-stream rate: 1 / p50 of the latency point's measured rows (reports.metrics.points)
    rules = ValidityRules()
    for result in point_metrics(run.table, run.points, rules):
        if result.scenario == "latency":
            key = f"{result.server}/{result.client}"
            assert run.meta["single_stream_rps"][key] == pytest.approx(1.0 / result.p50_s)


def test_a_refused_server_arg_stops_the_run_with_the_servers_message(tmp_path: Path) -> None:
    done = _gvf(
        "run",
        "--profile",
        "smoke",
        "--servers",
        "fastapi-naive,fastapi",
        "--scenarios",
        "latency",
        "--server-arg=--concurrency=2",
        "--out",
        str(tmp_path),
        "--no-report",
    )
    assert done.returncode == 1
    run = load_run(_only_run(tmp_path))
    detail = run.meta["outcome_detail"]
    assert run.meta["outcome"] == "failed" and "refused its flags" in detail and "--concurrency" in detail
    assert "--server-arg=fastapi-naive:FLAG" in detail
    assert set(run.meta["servers"]) == {"fastapi-naive"}  # no later server was started
    unknown = _gvf("run", "--server-arg=fastapi-nave:--concurrency=2", "--out", str(tmp_path))
    assert unknown.returncode == 2 and "unknown server kind 'fastapi-nave'" in unknown.stderr


def test_mcp_scenario_interleaves_rest_and_mcp_per_server_and_records_setup_and_footprint(
    tmp_path: Path,
) -> None:
    run = _smoke_run(tmp_path, "--scenarios", "mcp", "--repeat", "2", timeout=300)
    assert not run.partial, run.partial_reasons
    # the profile compares MCP on gradio and fastapi: the no-lock control has nothing to run
    assert run.meta["scenario_servers"] == {"mcp": ["gradio", "fastapi"]}
    assert [entry["server"] for entry in run.meta["servers_not_started"]] == ["fastapi-naive"]
    assert set(run.meta["servers"]) == {"gradio", "fastapi"}
    # REST and MCP of one server side by side in every round: trial t of the two pairs
    orders = {tuple(entry["order"]) for entry in run.meta["trial_order"]}
    assert orders == {("gradio/gradio-b64", "gradio/mcp", "fastapi/fastapi-b64", "fastapi/mcp")}
    assert [(r["trial"], r["load_points"]) for r in run.meta["trial_order"]] == [
        (1, ["users=1"]),
        (1, ["users=4"]),
        (2, ["users=1"]),
        (2, ["users=4"]),
    ]
    table = run.table
    assert_all_ok_but_mcp_drops(table)
    assert table["t_recv"].notna().all() and table["request_id"].is_unique
    mcp = table[table["client"] == "mcp"]
    assert_tool_call_rows(mcp)
    assert table.loc[table["client"] != "mcp", "endpoint"].str.endswith("segment_b64").all()
    # the session set-up, timed on its own as each MCP client was prepared
    setup = run.meta["client_setup"]
    assert set(setup) == {"gradio/mcp", "fastapi/mcp"}
    assert setup["gradio/mcp"]["endpoint"] == "/gradio_api/mcp/"
    assert setup["fastapi/mcp"]["endpoint"] == "/mcp"
    assert all(len(entry["setup_s"]) == 10 and min(entry["setup_s"]) > 0 for entry in setup.values())
    # every server's start-up and memory, and one warm-up call through each of its clients
    for label, clients in (("gradio", ["gradio-b64", "mcp"]), ("fastapi", ["fastapi-b64", "mcp"])):
        info = run.meta["servers"][label]
        assert [(call["client"], call["ok"]) for call in info["warmup_calls"]] == [(c, True) for c in clients]
        footprint = info["footprint"]
        assert 0 < footprint["startup_s"] < 180
        assert all(footprint[key] > 10e6 for key in ("rss_idle_bytes", "rss_warm_bytes", "rss_end_bytes"))
        served = table[table["server"] == label]
        assert footprint["requests_served"] >= len(served) + len(clients)  # the warm-up calls too
    # the report's "What MCP costs", per server, on the paired trials
    analysis = analyse(run)
    assert [cost.server for cost in analysis.mcp] == ["gradio", "fastapi"]
    for cost in analysis.mcp:
        assert cost.setup is not None and cost.setup.n == 10
        assert cost.single is not None and cost.saturating is not None
        assert cost.saturating.load_point == "users=4"
    assert {f.server for f in analysis.footprint} == {"gradio", "fastapi"}


def test_target_url_measures_a_running_gradio_server_rest_and_mcp(tmp_path: Path) -> None:
    """What the README shows for a deployed Space, against a local gradio server."""
    with sim_server("gradio", tmp_path) as server:
        run = _smoke_run(tmp_path / "runs", "--target-url", server.url, "--scenarios", "latency,mcp")
        assert server.alive
    assert run.meta["outcome"] == "complete" and set(run.table["server"]) == {"target"}
    assert set(zip(run.table["scenario"], run.table["client"], strict=True)) == {
        ("latency", "gradio-b64"),
        ("mcp", "gradio-b64"),
        ("mcp", "mcp"),
    }
    assert_all_ok_but_mcp_drops(run.table)
    assert run.table["t_recv"].isna().all()  # no ledger join
    assert run.meta["client_setup"]["target/mcp"]["endpoint"] == "/gradio_api/mcp/"
    assert "footprint" not in run.meta["servers"]["target"]  # not a server this run started


def test_the_mcp_client_runs_in_every_driver(tmp_path: Path) -> None:
    """Like every client: Locust's users (latency), the bursts' and the open loop's threads."""
    args = ("--servers", "gradio", "--clients", "mcp", "--scenarios", "latency,collisions,open-loop")
    run = _smoke_run(tmp_path, *args)
    assert not run.partial, run.partial_reasons
    assert set(run.table["client"]) == {"mcp"} and set(run.table["scenario"]) == {
        "latency",
        "collisions",
        "open-loop",
    }
    assert_all_ok_but_mcp_drops(run.table)
    assert_tool_call_rows(run.table)
    assert run.table.loc[run.table["scenario"] == "open-loop", "t_scheduled"].notna().all()
