"""The analysis notebook runs top to bottom (nbclient, the venv's python3 kernel) on a run and
shows the run's analysis: the points with their intervals and the verdict the report shows."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from reports.analysis import analyse
from reports.load import load_run

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "analysis.ipynb"


@pytest.mark.slow
def test_notebook_executes_on_a_run(smoke_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = smoke_run
    monkeypatch.setenv("GVF_RUN_DIR", str(run_dir))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    errors = [
        o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []
    assert (run_dir / "notebook-throughput.png").exists() and (
        run_dir / "notebook-decomposition.png"
    ).exists()
    expected = analyse(load_run(run_dir)).recommendation.verdict
    assert expected in notebook.cells[-1].outputs[0]["text"]
    # the points table shows each statistic with its interval and the method that made it
    table = notebook.cells[2].outputs[0]["data"]["text/plain"]
    assert all(column in table for column in ("throughput_low", "p90_high", "throughput_method"))
