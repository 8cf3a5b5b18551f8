"""run.json's writer and what it records about the machine: versions, git SHA, host, and the
one nvidia-smi probe (tried with stand-in executables: this machine has no GPU)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest

from loadtests.provenance import REPO_ROOT, RunRecord, git_sha, gpu_name, host, versions
from reports.schema import PointRecord


def test_run_record_is_rewritten_whole_on_each_change(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    record = RunRecord(path, {"outcome": "running", "points": []})
    assert json.loads(path.read_text()) == {"outcome": "running", "points": []}
    point = PointRecord("fastapi", "fastapi", "latency", "users=1", 1, None, 1.0, 2.0, None, 12.5, None)
    record.add_point(point)
    record.data["outcome"] = "complete"
    record.write()
    written = json.loads(path.read_text())
    assert written["outcome"] == "complete" and written["points"][0]["load_point"] == "users=1"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left


def _fake_nvidia_smi(directory: Path, script: str) -> None:
    executable = directory / "nvidia-smi"
    executable.write_text("#!/bin/sh\n" + script + "\n")
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ('printf "NVIDIA H200\\nNVIDIA H200\\n"', "NVIDIA H200"),
        ('echo "No devices were found"; exit 6', None),
        ("exit 0", None),
        (None, None),  # no nvidia-smi at all
    ],
)
def test_gpu_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str | None, expected: str | None
) -> None:
    if script is not None:
        _fake_nvidia_smi(tmp_path, script)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_name() == expected
    assert host()["gpu"] == expected


def test_host_versions_and_git_sha() -> None:
    machine = host()
    assert set(machine) == {"cpu", "cores", "gpu", "hostname"} and machine["cores"] >= 1 and machine["cpu"]
    found = versions()
    assert found["python"] and found["locust"] and found["gradio"] and "torch" in found
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert re.fullmatch(r"[0-9a-f]{40}", git_sha() or "") and git_sha() == head.strip()
