"""``servers/core/ledger.py``: counters, drops, stages, and the column contract with the reports."""

from __future__ import annotations

from dataclasses import fields

import pytest

from reports.schema import LEDGER_COLUMNS, RequestRow
from servers.core.backends.sim import SimBackend
from servers.core.imaging import ImageError
from servers.core.ledger import ClientGone, Ledger, LedgerRow, Stage
from servers.core.segmenter import LedgeredSegmenter, Segmenter
from tests.helpers.common import PHOTO


def test_ledger_counts_depth_and_drops() -> None:
    ledger = Ledger(lambda: None, lambda: None, capacity=2)
    rows = [ledger.open(f"r{i}", "/segment") for i in range(3)]
    assert ledger.in_flight == 3
    with ledger.gpu_stage([rows[0]]), ledger.gpu_stage([rows[1]]):
        assert ledger.in_gpu == 2
    assert (rows[0].gpu_depth, rows[1].gpu_depth) == (1, 2)
    assert (rows[0].batch_size, rows[0].batch_id, rows[1].batch_id) == (1, 1, 2)
    for row in rows:
        ledger.close(row, 200)
    snapshot = ledger.snapshot()
    assert [r["request_id"] for r in snapshot["requests"]] == ["r1", "r2"]
    assert (snapshot["dropped"], snapshot["in_flight"], snapshot["in_gpu"]) == (1, 0, 0)
    ledger.reset()
    assert ledger.snapshot()["requests"] == [] and ledger.dropped == 0


def test_ledger_fields_are_the_tables_ledger_columns() -> None:
    """The two sides of the servers boundary declare the ledger's fields: they must not drift."""
    # request_id is the join key, not a joined column; the table's own `status` is the client's
    renamed = {"status": "server_status"}
    joined = {renamed.get(f.name, f.name) for f in fields(LedgerRow) if f.name != "request_id"}
    assert joined == set(LEDGER_COLUMNS)
    assert set(LEDGER_COLUMNS) <= {f.name for f in fields(RequestRow)}


def test_rows_say_how_far_a_request_got() -> None:
    sim = SimBackend(0)
    ledger = Ledger(sim.peak_memory_bytes, sim.reset_peak_memory)
    service = LedgeredSegmenter(Segmenter(sim), ledger)
    done = ledger.open("done", "/segment")
    service.run(done, lambda: PHOTO)
    gone = ledger.open("gone", "/segment")
    with pytest.raises(ClientGone):
        service.run(gone, lambda: PHOTO, still_wanted=lambda: False)
    bad = ledger.open("bad", "/segment")
    with pytest.raises(ImageError):
        service.run(bad, lambda: b"not an image")
    assert (done.stage, done.t_gpu_start is not None) == (Stage.POST, True)
    # the client left: pre ran, the GPU stage was skipped
    assert (gone.stage, gone.t_gpu_start, gone.pre_s is not None) == (Stage.PRE, None, True)
    assert (bad.stage, bad.t_gpu_start) == (Stage.PRE, None)
    assert ledger.in_gpu == 0
