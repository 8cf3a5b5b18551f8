"""Shared fixtures: servers under test run as real processes in their own process groups."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.serverproc import ServerProcess, start_server
from tests.helpers.common import StartServer

# nothing in the tests may reach the network: transformers and the hub stay offline
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (marker gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[StartServer]:
    """Start ``python -m servers KIND ...`` processes; all are stopped (by group) afterwards."""
    started: list[ServerProcess] = []

    def start(kind: str, *args: str) -> ServerProcess:
        server = start_server(kind, list(args), log_path=tmp_path / f"{kind}-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real ``gvf run --profile smoke`` (all three servers on sim, report built), shared by
    the tests that need a run made by the product rather than a hand-built table."""
    out = tmp_path_factory.mktemp("smoke-runs")
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.cli", "run", "--profile", "smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (run_dir,) = [path for path in out.iterdir() if path.is_dir()]
    return run_dir
