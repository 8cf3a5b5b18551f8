"""The soak: a fixed rate for a fixed time with the server process sampled (``resources.csv``),
and the memory-slope verdict that flags growth and passes a plateau — tried on real processes:
a test-only server that leaks a known amount per request, the same server leaking nothing,
and (slow) a short ``gvf run --scenarios soak`` on sim."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from loadtests.drivers.open import run_soak
from loadtests.resources import sampler_for
from loadtests.scenarios import Phase, SoakScenario
from loadtests.serverproc import ServerProcess, free_port, launch
from reports.load import load_run, read_resources
from reports.metrics.rules import ValidityRules
from reports.metrics.soak import GROWTH, PLATEAU, block_slope, resource_trends
from reports.schema import RESOURCE_COLUMNS, RESOURCES_FILE
from tests.helpers.points import CollectingSink, driver_input, point_scope
from tests.helpers.runs import gvf_run

REPO = Path(__file__).resolve().parent.parent
RATE = 100.0
SOAK_S = 6.0
LEAK_KB = 64


@contextmanager
def leaky_server(tmp_path: Path, leak_kb: int) -> Iterator[ServerProcess]:
    """The leaky fixture in its own process group, labelled as the kind whose protocol it speaks."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "tests.helpers.leaky_server",
        "--port",
        str(port),
        "--leak-kb",
        str(leak_kb),
    ]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    server = launch(
        "fastapi", command, f"http://127.0.0.1:{port}", tmp_path / f"leaky-{leak_kb}.log", env, cwd=REPO
    )
    try:
        yield server
    finally:
        server.stop()


def soak(tmp_path: Path, leak_kb: int) -> Path:
    """Soak the leaky server at RATE for SOAK_S, sampled every 0.25 s; the run dir it wrote."""
    run_dir = tmp_path / f"leak-{leak_kb}"
    run_dir.mkdir()
    with leaky_server(tmp_path, leak_kb) as server:
        scope = point_scope(server, run_dir)
        target = scope.target
        tags: dict[str, str | int] = {
            "run_id": "soak-test",
            "server": "leaky",
            "client": "fastapi",
            "trial": 1,
        }
        phase = Phase("soak", f"rate={RATE:.2f}/s", None, RATE, int(RATE * SOAK_S), SOAK_S)
        job = driver_input(
            scope,
            [phase],
            CollectingSink(),
            soak=SoakScenario(soak_s=SOAK_S, sample_every_s=0.25),
            sample_resources=sampler_for(target, scope.recorder, tags, tmp_path / "no-temp-dir"),
        )
        (point,) = run_soak(job).points
        assert point.scenario == "soak" and point.t_end - point.t_start == pytest.approx(SOAK_S, abs=0.05)
    return run_dir


def test_the_slope_flags_a_leak_and_passes_a_plateau(tmp_path: Path) -> None:
    rules = ValidityRules()
    verdicts = {}
    for leak_kb in (LEAK_KB, 0):
        run_dir = soak(tmp_path, leak_kb)
        resources = read_resources(run_dir / RESOURCES_FILE)
        assert resources is not None and list(resources.columns) == list(RESOURCE_COLUMNS)
        # every 0.25 s over 6 s, one on entry and one after the drain
        assert len(resources) >= 20 and resources["rss_bytes"].notna().all()
        assert resources["requests"].is_monotonic_increasing
        assert resources["requests"].iloc[-1] >= 0.9 * RATE * SOAK_S
        (trend,) = resource_trends(resources, rules)
        verdicts[leak_kb] = trend
        if leak_kb:
            assert resources["held"].iloc[-1] == f'{{"leaked_kb": {trend.requests * leak_kb}}}'
    leak, flat = verdicts[LEAK_KB], verdicts[0]
    assert leak.verdict == GROWTH, leak.line()
    # 64 KiB per request is 65.5 MB per 1,000 requests, plus what keeping each block costs
    assert leak.slope is not None and leak.slope.estimate == pytest.approx(LEAK_KB * 1.024, rel=0.05)
    assert flat.verdict == PLATEAU, flat.line()
    assert "GROWTH" in leak.line() and "plateau" in flat.line()


def test_block_slope_on_known_lines() -> None:
    x = np.linspace(0, 3, 40)
    exact = block_slope(x, 5 + 2 * x, 6)
    assert exact is not None and exact.estimate == pytest.approx(2) and exact.high - exact.low < 1e-9
    assert exact.n == 6 and "6 block means" in exact.method
    noisy = block_slope(x, 5 + np.random.default_rng(1).normal(0, 1, 40), 6)
    assert noisy is not None and noisy.low < 0 < noisy.high
    assert block_slope(x[:5], x[:5], 6) is None  # two blocks of two: no degree of freedom left
    assert block_slope(np.ones(20), x[:20], 6) is None  # no spread in the requests


@pytest.mark.slow
def test_a_short_soak_on_sim_samples_every_server_and_draws_the_figure(tmp_path: Path) -> None:
    args = ("--profile", "smoke", "--scenarios", "soak", "--servers", "gradio,fastapi")
    run_dir = gvf_run(tmp_path, *args, "--soak-s", "8")
    run = load_run(run_dir)
    assert run.meta["scenarios"]["soak"]["soak_s"] == 8
    resources = run.resources
    assert resources is not None
    for server in ("gradio", "fastapi"):
        own = resources[resources["server"] == server]
        assert len(own) >= 12, own  # every 0.5 s
        assert own["rss_bytes"].notna().all() and own["fds"].notna().all() and own["threads"].notna().all()
    gradio = resources[resources["server"] == "gradio"]
    assert gradio["held"].str.contains("state_sessions").all() and gradio["temp_bytes"].notna().all()
    assert (run_dir / "report" / "figures" / "soak.png").stat().st_size > 10_000
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "### Soak" in summary and summary.count("gradio/gradio-b64: memory grew") == 1, summary
