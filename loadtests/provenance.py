"""Where a run's numbers come from: run.json (kept in memory, rewritten atomically) and the
facts it records about the load generator's machine — package versions, git SHA, CPU, GPU.

:func:`gpu_name` and :func:`gpu_memory_by_pid` are the project's ``nvidia-smi`` probes: run.json's
``host.gpu`` and the ``gvf run`` default profile (``full`` with a GPU, ``quick`` without) come
from the first, a soak's GPU memory per server process from the second.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from reports.schema import PointRecord

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONED_PACKAGES = ("torch", "gradio", "fastapi", "locust", "urllib3")


class RunRecord:
    """run.json, kept in memory and rewritten atomically after every change that matters."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def add_point(self, point: PointRecord) -> None:
        self.data["points"].append(asdict(point))
        self.write()


def record_header() -> dict[str, Any]:
    """What every record (run.json, a tune's tune.json) starts with: its outcome so far, its times,
    the code and the machine."""
    return {
        "outcome": "running",
        "outcome_detail": "",
        "started": now_iso(),
        "ended": None,
        "git_sha": git_sha(),
        "versions": versions(),
        "host": host(),
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str | None]:
    """Python's version and each measured package's (None where it is not installed)."""
    return {"python": platform.python_version(), **{name: _version(name) for name in VERSIONED_PACKAGES}}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_sha() -> str | None:
    """The repository's HEAD, None outside a git checkout."""
    return _stdout(["git", "rev-parse", "HEAD"], timeout_s=5) or None


def gpu_name() -> str | None:
    """The first GPU's name as ``nvidia-smi`` reports it; None without one (no nvidia-smi, no
    driver, no device, or a probe that failed or hung)."""
    if not shutil.which("nvidia-smi"):
        return None
    names = _stdout(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], timeout_s=10).splitlines()
    return names[0].strip() if names else None


def gpu_memory_by_pid() -> dict[int, int] | None:
    """GPU memory in use per process id (bytes), as ``nvidia-smi --query-compute-apps`` reports it;
    None without nvidia-smi or when the probe failed."""
    if not shutil.which("nvidia-smi"):
        return None
    command = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    used: dict[int, int] = {}
    for line in _stdout(command, timeout_s=10).splitlines():
        pid, _, mib = line.partition(",")
        with contextlib.suppress(ValueError):
            used[int(pid)] = used.get(int(pid), 0) + int(float(mib) * 2**20)
    return used


def _stdout(command: list[str], timeout_s: float) -> str:
    """What ``command`` (run in the repository) printed, stripped; "" when it failed or hung."""
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def host() -> dict[str, Any]:
    """The load generator's machine: CPU model, cores, GPU, hostname."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu_name(), "hostname": socket.gethostname()}
