"""The GPU check script, exercised on the CPU at a small resolution with the lite variant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_script_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GVF_VARIANT": "lite",
        "GVF_RESOLUTION": "64",
        "GVF_BATCHES": "1,2",
        "GVF_ITERS": "2",
        "GVF_PROFILE": "smoke",
        "GVF_DEVICE": "cpu",
        "PYTHON": sys.executable,
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    raw = json.loads((tmp_path / "out" / "raw_latency.json").read_text())
    assert [row["batch"] for row in raw["batches"]] == [1, 2]
    assert raw["model"]["weights"] == "random" and raw["model"]["device"] == "cpu"
    (run_dir,) = (tmp_path / "out" / "runs").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["model"]["backend"] == "birefnet_native" and run["model"]["weights"] == "random"
    html = (run_dir / "report" / "report.html").read_text()
    assert "RANDOM" in html.upper() and "birefnet_native" in html
