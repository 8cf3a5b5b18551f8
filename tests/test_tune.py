"""``gvf tune`` and ``gvf run --best-of`` end to end on the simulated GPU: the search finds the
known best configuration, keeps to its time budget, and the tuned flags reach the servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reports.load import load_run
from reports.schema import RUN_FILE, TUNE_FILE

GVF = [sys.executable, "-m", "loadtests.cli"]
H100 = Path(__file__).parents[1] / "servers" / "core" / "profiles" / "h100-birefnet-swinl-fp16-1024.json"


def _gvf(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GVF, *args], capture_output=True, text=True, timeout=timeout, check=False)


def _flat_batch_profile(path: Path) -> Path:
    """The shipped profile with a GPU call that costs 120 ms whatever its batch (1 to 8) and small
    CPU stages (64² input): batch 8 serves 8× batch 1's images/s, 2× batch 4's — a known best."""
    profile = json.loads(H100.read_text())
    profile["resolution"] = 64
    for point in profile["batch"]:
        point.update(service_ms=120.0, service_ms_min=119.0, service_ms_max=121.0)
    path.write_text(json.dumps(profile))
    return path


@pytest.mark.slow
def test_tune_finds_the_known_best_batch_and_reports_it(tmp_path: Path) -> None:
    profile = _flat_batch_profile(tmp_path / "flat.json")
    out = tmp_path / "tune"
    done = _gvf(
        "tune", "--servers", "fastapi", "--model", "sim", f"--server-arg=--sim-profile={profile}",
        "--only", "batch", "--slo-p90-ms", "5000", "--final-repeat", "2", "--budget-s", "240",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    tune = json.loads((out / TUNE_FILE).read_text())
    assert tune["outcome"] == "complete" and tune["slo"]["p90_ms"] == 5000
    assert tune["best"]["fastapi"]["flags"] == ["--batch=8"]
    assert tune["best"]["fastapi"]["command"][-2:] == [f"--sim-profile={profile}", "--batch=8"]
    roles = [run["role"] for run in tune["runs"]]
    assert roles == ["defaults", "candidate", "candidate", "candidate", "best"]
    # every candidate is a run of the run machinery, with the server started at its flags
    for run in tune["runs"]:
        meta = load_run(out / run["path"]).meta
        assert meta["outcome"] == "complete"
        assert meta["servers"]["fastapi"]["flags"]["batch"] == int(run["flags"]["fastapi"][0].split("=")[1])
    report = (out / "tune.md").read_text()
    assert (
        "SIMULATED GPU" in report and "--batch=8" in report and (out / "figures" / "tune.png").stat().st_size
    )


@pytest.mark.slow
def test_tune_keeps_to_its_budget_and_lists_what_it_cut(tmp_path: Path) -> None:
    out = tmp_path / "tune"
    budget_s = 25.0
    done = _gvf(
        "tune", "--servers", "fastapi", "--model", "sim", "--server-arg=--sim-ms=10",
        "--budget-s", str(budget_s), "--final-repeat", "2", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    tune = json.loads((out / TUNE_FILE).read_text())
    assert tune["skipped"] and "does not fit" in tune["skipped"][0]["why"]
    assert tune["runs"][-1]["role"] == "best"  # the reserve kept room for the best run
    # the search stops before a candidate predicted not to fit; predictions err by a few seconds
    assert tune["elapsed_s"] <= budget_s * 1.25


def test_best_of_passes_the_tuned_flags_and_refuses_a_clash(tmp_path: Path) -> None:
    tune_dir = tmp_path / "tune"
    tune_dir.mkdir()
    (tune_dir / TUNE_FILE).write_text(
        json.dumps(
            {"best": {"fastapi": {"flags": ["--batch=4", "--batch-wait-ms=5"]}, "gradio": {"flags": []}}}
        )
    )
    out = tmp_path / "runs"
    clash = _gvf("run", "--best-of", str(tune_dir), "--server-arg=fastapi:--batch=2", "--out", str(out))
    assert clash.returncode == 2 and "--best-of" in clash.stderr and "--batch" in clash.stderr
    done = _gvf(
        "run", "--profile", "smoke", "--servers", "fastapi", "--scenarios", "latency", "--no-report",
        "--best-of", str(tune_dir), "--out", str(out), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = out.iterdir()
    meta = json.loads((run_dir / RUN_FILE).read_text())
    assert meta["best_of"]["flags"] == {"fastapi": ["--batch=4", "--batch-wait-ms=5"]}
    flags = meta["servers"]["fastapi"]["flags"]
    assert flags["batch"] == 4 and flags["batch_wait_ms"] == 5
