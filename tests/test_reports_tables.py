"""reports.tables: the cells both documents show line up with their columns, carry the point's
numbers in the columns' units, and the rules in words follow the rules applied."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reports.analysis import analyse
from reports.load import load_run
from reports.metrics.intervals import Interval
from reports.metrics.sweeps import Knee
from reports.schema import ScenarioName
from reports.tables import (
    KNEE_COLUMNS,
    POINT_COLUMNS,
    SUMMARY_COLUMNS,
    interval_cell,
    knee_cells,
    mib_cell,
    ms_cell,
    num_cell,
    pct_cell,
    point_cells,
    rules_text,
    summary_cells,
)
from tests.helpers.reports_tables import RULES, closed_loop_run, metrics_of, steady_rows


def test_cells_say_missing_values_with_a_dash() -> None:
    assert ms_cell(None) == num_cell(None) == pct_cell(None) == mib_cell(None) == interval_cell(None) == "—"
    assert interval_cell(Interval(0.0123, 0.0119, 0.0127, "m", 3), 1e3, ".1f") == "12.3 (11.9–12.7)"
    assert ms_cell(0.01234) == "12.3"
    assert num_cell(3.14159) == "3.14" and num_cell(3.14159, ".0f") == "3"
    assert pct_cell(0.256) == "26%"
    assert mib_cell(3 * 2**20) == "3"


def test_point_cells_line_up_with_the_columns() -> None:
    rows = steady_rows(users=2, duration=10.0)
    rows[50].update(ok=False, status=503, error="http: queue full")
    m = metrics_of(rows)
    cells = dict(zip(POINT_COLUMNS, point_cells(m), strict=True))
    assert cells["verdict"] == m.verdict and cells["load"] == m.load_point and cells["trial"] == "1"
    assert cells["measured / ok"] == f"{m.n_measured} / {m.n_ok}" and cells["error rate"] == "1%"
    assert cells["errors"] == "http [503]: 1"
    assert cells["in flight (configured)"] == f"{m.client_in_flight:.2f} (2)"
    assert cells["p50 ms"] == "100.0" and cells["p99 ms"] == "—"
    # the decomposition's mean and the number of requests it covers
    assert cells["decomposed mean (n)"] == f"100.0 ({m.n_decomposed})"
    assert cells["gpu"] == ms_cell(m.gpu_s)
    assert cells["inflation"] == "—"  # a users=2 point, and no single-stream point: no baseline
    assert cells["reasons / notes"] == "; ".join(m.reasons + m.notes)


def test_summary_cells_line_up_with_their_columns(tmp_path: Path) -> None:
    run_dir = closed_loop_run(
        tmp_path, {"fastapi": {2: 0.1, 4: 0.1}}, trials=3, cpu={("fastapi", "throughput", 4): 95.0}
    )
    valid, invalid = analyse(load_run(run_dir)).summaries
    cells = dict(zip(SUMMARY_COLUMNS, summary_cells(valid), strict=True))
    assert cells["trials"] == "3" and cells["verdict"] == "VALID" and cells["load"] == "users=2"
    assert cells["img/s (95% CI)"] == interval_cell(valid.intervals["throughput"])
    assert cells["p90 ms (95% CI)"] == interval_cell(valid.intervals["p90"], 1e3, ".1f")
    assert cells["errors"] == "0%" and cells["reasons / notes"] == "—"
    invalid_cells = dict(zip(SUMMARY_COLUMNS, summary_cells(invalid), strict=True))
    assert invalid_cells["verdict"] == "INVALID"
    assert invalid_cells["reasons / notes"].startswith("trial 1: load process averaged 95% CPU")


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
        ("max_error_rate", 0.05, "more than 5% of the measured requests failed"),
        ("stability_sigmas", 2.5, "2.5 standard deviations"),
        ("material_difference", 0.1, "at least 10% either way"),
        ("max_profiler_disagreement_s", 0.004, "exceeds 4 ms"),
    ],
)
def test_rules_text_follows_the_rules_applied(field: str, value: float, shown: str) -> None:
    assert not any(shown in line for line in rules_text(RULES))
    assert any(shown in line for line in rules_text(replace(RULES, **{field: value})))


def test_the_readme_states_the_rules_every_report_prints() -> None:
    """The README's "Validity rules" section and ``rules_text`` say the same thing, line by line."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Validity rules") :]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    section = section[: section.index("\n### ", 1)] if "\n### " in section[1:] else section
    stated = [line[2:] for line in section.splitlines() if line.startswith("- ")]
    assert stated == rules_text(RULES)
