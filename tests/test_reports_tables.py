"""reports.tables: the cells both documents show line up with their columns, carry the point's
numbers in the columns' units, and the rules in words follow the rules applied."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reports.metrics.sweeps import Knee
from reports.schema import ScenarioName
from reports.tables import (
    KNEE_COLUMNS,
    POINT_COLUMNS,
    SUMMARY_POINT_COLUMNS,
    knee_cells,
    mib_cell,
    ms_cell,
    num_cell,
    pct_cell,
    point_cells,
    rules_text,
    summary_point_cells,
)
from tests.helpers.reports_tables import RULES, metrics_of, steady_rows, sweep_point


def test_cells_say_missing_values_with_a_dash() -> None:
    assert ms_cell(None) == num_cell(None) == pct_cell(None) == mib_cell(None) == "—"
    assert ms_cell(0.01234) == "12.3"
    assert num_cell(3.14159) == "3.14" and num_cell(3.14159, ".0f") == "3"
    assert pct_cell(0.256) == "26%"
    assert mib_cell(3 * 2**20) == "3"


def test_point_cells_line_up_with_the_columns() -> None:
    rows = steady_rows(users=2, duration=10.0)
    rows[50].update(ok=False, status=503, error="http: queue full")
    m = metrics_of(rows)
    cells = dict(zip(POINT_COLUMNS, point_cells(m), strict=True))
    assert cells["verdict"] == m.verdict and cells["load"] == m.load_point
    assert cells["measured / ok"] == f"{m.n_measured} / {m.n_ok}"
    assert cells["errors"] == "http [503]: 1"
    assert cells["p50 ms"] == "100.0" and cells["p99 ms"] == "—"
    # the decomposition's mean and the number of requests it covers
    assert cells["decomposed mean (n)"] == f"100.0 ({m.n_decomposed})"
    assert cells["gpu"] == ms_cell(m.gpu_s) and cells["inflation"] == "1.00×"
    assert cells["reasons / notes"] == "; ".join(m.reasons + m.notes)


def test_summary_cells_line_up_with_their_columns() -> None:
    m = sweep_point(4, 0.2, valid=False, reasons=["a", "b"], throughput_rps=12.5, collision_share=0.5)
    cells = dict(zip(SUMMARY_POINT_COLUMNS, summary_point_cells(m), strict=True))
    assert cells["verdict"] == "INVALID" and cells["img/s"] == "12.50" and cells["p90 ms"] == "200.0"
    assert cells["collisions"] == "50%" and cells["reasons"] == "a; b"
    assert summary_point_cells(sweep_point(1, 0.1))[-1] == "—"


def test_knee_cells_line_up_with_their_columns() -> None:
    found = Knee("r", "fastapi", "fastapi", ScenarioName.THROUGHPUT, 4.0, 0.19, 0.1, 0.2, "how")
    cells = dict(zip(KNEE_COLUMNS, knee_cells(found), strict=True))
    assert cells == {
        "series": "fastapi/fastapi",
        "sweep": ScenarioName.THROUGHPUT,
        "knee load": "4",
        "p90 ms": "190.0",
        "single-stream p90 ms": "100.0",
        "limit ms": "200.0",
        "how": "how",
    }
    none = Knee("r", "fastapi", "fastapi", ScenarioName.THROUGHPUT, None, None, None, None, "why")
    assert knee_cells(none)[2:6] == ["none", "—", "—", "—"]


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("knee_factor", 3.5, "3.5×"),
        ("min_samples_p90", 100, "p90 ≥ 100"),
        ("max_load_cpu_percent", 75.0, "> 75% CPU"),
        ("max_thirds_spread", 0.25, "25%"),
    ],
)
def test_rules_text_follows_the_rules_applied(field: str, value: float, shown: str) -> None:
    assert not any(shown in line for line in rules_text(RULES))
    assert any(shown in line for line in rules_text(replace(RULES, **{field: value})))
