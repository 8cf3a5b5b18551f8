"""The run's table: one row per result (send lag in open loop), the ledger joined by request
id without losing unjoined rows, a line cut by a crash dropped, raw ledger rows kept."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loadtests.clients import CallResult
from loadtests.recorder import Recorder, make_row
from loadtests.scenarios import Phase
from reports.load import load_run
from reports.schema import COLUMNS, LEDGER_FILE, TABLE_FILE, RequestRow

PHASE = Phase("latency", "users=1", 1)


def _row(request_id: str, t_scheduled: float | None = None) -> RequestRow:
    result = CallResult(request_id, 1.0, 2.0, 200, True, "", 10)
    return make_row(
        result,
        run_id="r",
        server="fastapi",
        client="fastapi",
        phase=PHASE,
        worker="local",
        t_scheduled=t_scheduled,
    )


def test_make_row_carries_the_point_and_the_send_lag() -> None:
    closed = _row("a")
    assert (closed.scenario, closed.load_point, closed.users, closed.rate) == ("latency", "users=1", 1, None)
    assert closed.t_scheduled is None and closed.send_lag is None
    scheduled = _row("b", t_scheduled=0.75)
    assert scheduled.t_scheduled == 0.75 and scheduled.send_lag == pytest.approx(0.25)


def test_rows_are_on_disk_as_soon_as_appended(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    recorder.append(_row("a"))
    lines = (tmp_path / TABLE_FILE).read_text().splitlines()  # before close: flushed per row
    assert tuple(lines[0].split(",")) == COLUMNS and len(lines) == 2
    recorder.save_ledger("fastapi", [{"request_id": "a", "t_recv": 1.1}])
    recorder.close()
    recorder.append(_row("late"))  # a request that outlived the run: the table is final
    assert len((tmp_path / TABLE_FILE).read_text().splitlines()) == 2
    saved = [json.loads(line) for line in (tmp_path / LEDGER_FILE).read_text().splitlines()]
    assert saved == [{"server": "fastapi", "request_id": "a", "t_recv": 1.1}]


def test_recorder_joins_by_request_id_and_keeps_unjoined_rows(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    for request_id in ("a", "b"):
        recorder.append(_row(request_id))
    ledger = [{"request_id": "a", "status": 200, "t_recv": 1.1, "t_send": 1.9, "endpoint": "/segment"}]
    assert recorder.join_ledger("fastapi", ledger) == 1
    assert recorder.join_ledger("gradio", ledger) == 0  # another server's rows are not touched
    recorder.close()
    run_table = load_run(tmp_path).table.set_index("request_id")
    assert run_table.loc["a", "t_recv"] == 1.1 and run_table.loc["a", "server_status"] == 200
    assert run_table.loc["a", "endpoint"] == "/segment"
    assert pd.isna(run_table.loc["b", "t_recv"]) and run_table.loc["b", "ok"]


@pytest.mark.parametrize("cut", ["short", "long"])
def test_recorder_join_drops_a_line_cut_by_a_crash(tmp_path: Path, cut: str) -> None:
    recorder = Recorder(tmp_path)
    for request_id in ("a", "b"):
        recorder.append(_row(request_id))
    recorder.close()
    table = tmp_path / TABLE_FILE
    full_line = table.read_text().splitlines()[-1]
    with open(table, "a", encoding="utf-8") as out:  # an earlier process died mid-line
        out.write(full_line.replace(",b,", ",cut,")[: len(full_line) // 2])
    recorder = Recorder(tmp_path)
    if cut == "long":  # a later process appended its row to the cut line
        recorder.append(_row("c"))
    else:
        with open(table, "a", encoding="utf-8") as out:
            out.write("\n")  # the cut line is short: fewer cells than columns
    recorder.join_ledger("fastapi", [{"request_id": "a", "status": 200, "t_recv": 1.1}])
    recorder.close()
    run = load_run(tmp_path)
    assert not any("half-written" in reason for reason in run.partial_reasons)
    assert list(run.table["request_id"]) == ["a", "b"]
    assert run.table.set_index("request_id").loc["a", "t_recv"] == 1.1
