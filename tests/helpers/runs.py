"""A real ``gvf run`` in a child process (Locust patches the interpreter it runs in), for the tests
that need a run the product made: the run directory it wrote, once it succeeded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def gvf_run(out: Path, *args: str, timeout_s: float = 300) -> Path:
    """``gvf run --out OUT ARGS``; asserts it succeeded and returns the one run directory under OUT."""
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.cli", "run", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (run_dir,) = [path for path in out.iterdir() if path.is_dir()]
    return run_dir
