"""The GPU check script, exercised on the CPU at a small resolution with the lite variant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from servers.core.gpu_profile import load_profile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_script_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GVF_VARIANT": "lite",
        "GVF_RESOLUTION": "64",
        "GVF_BATCHES": "1,2",
        "GVF_OVERLAP": "1,2",
        "GVF_ITERS": "2",
        "GVF_PROFILE": "smoke",
        "GVF_SCENARIOS": "latency,collisions",  # every server, a report; the rest is other tests' job
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
    profile = load_profile(tmp_path / "out" / "gpu_profile.json")
    assert [point.batch_size for point in profile.batch] == [1, 2]
    assert [point.calls for point in profile.overlap] == [1, 2]
    assert profile.gpu.startswith("CPU") and profile.memory is None and "random weights" in profile.model
    (run_dir,) = (tmp_path / "out" / "runs").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["model"]["backend"] == "birefnet_native" and run["model"]["weights"] == "random"
    html = (run_dir / "report" / "report.html").read_text()
    assert "RANDOM" in html.upper() and "birefnet_native" in html
