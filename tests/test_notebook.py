"""The analysis notebook runs top to bottom (nbclient, the venv's python3 kernel) on a run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from reports_fixtures import make_run_dir

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "analysis.ipynb"


def test_notebook_executes_on_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = make_run_dir(tmp_path / "20270115-080000-smoke")
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
    assert "FastAPI serves" in notebook.cells[-1].outputs[0]["text"]
