"""Dynamic batching, measured: each server at ``--batch 8`` against ``--batch 1``, 16 closed-loop users.

Runs ``gvf``'s own orchestrator (the load generator's clients, Locust, the ledger join) against the
simulated GPU twice over — its default cost (``--sim-ms 50``; each extra image in a batch adds 35 % of
a call) and the shipped H100 profile replayed (``--sim-profile h100-birefnet-swinl-fp16-1024``: batch
1 119 ms, batch 8 332 ms, CPU stages at 1024²) — and reads every figure back from the run's table
through ``reports.analysis``: images/s at 16 users and its p90, the same server's single-stream p90 in
the same run, the mean batch size from the ledger, and each point's verdict. Each configuration runs
``--repeats`` times, interleaved (every model and batch size once per repeat), because the box is
shared and drifts: the figures are the median and the range over the repeats, and the batch-8 gain
is taken per repeat (batch 8 over the batch 1 run next to it). A simulated GPU: these figures
describe how each server batches, not a real GPU.

    python scripts/bench_batching.py [--out DIR] [--repeats 3] [--users 16] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import locust  # noqa: F401  (gevent must patch before anything else imports ssl)

from loadtests.orchestrate import RunOptions, run
from loadtests.progress import Progress
from loadtests.scenarios import SMALL_IMAGE, LatencyScenario, Profile, ThroughputScenario
from reports.analysis import analyse
from reports.load import load_run
from reports.schema import ScenarioName

SERVERS = ("fastapi", "gradio")
BATCHES = (1, 8)
H100 = "h100-birefnet-swinl-fp16-1024"
MODELS = {  # label -> the sim's flags
    "sim (50 ms, +35 %/image)": ("--sim-ms", "50"),
    f"sim replaying {H100}": ("--sim-profile", H100),
}


@dataclass
class Measured:
    """One server at one batch size in one run, from the run's table."""

    images_per_s: float
    p90_ms: float | None
    single_p90_ms: float | None
    mean_batch: float | None
    verdict: str
    reasons: list[str]


def measure(model_flags: tuple[str, ...], batch: int, args: argparse.Namespace) -> dict[str, Measured]:
    profile = Profile(
        name="bench-batching",
        description="dynamic batching on the simulated GPU",
        model="sim",
        image=SMALL_IMAGE,
        server_args=model_flags,
        request_timeout_s=60.0,
        scenarios={
            ScenarioName.LATENCY: LatencyScenario(percentile="p90", max_s=60.0),
            ScenarioName.THROUGHPUT: ThroughputScenario(
                users=(args.users,), requests=args.requests, max_s=args.seconds
            ),
        },
    )
    options = RunOptions(
        profile=profile,
        servers=list(SERVERS),
        scenarios=[ScenarioName.LATENCY, ScenarioName.THROUGHPUT],
        out_dir=args.out,
        image=SMALL_IMAGE,
        model="sim",
        server_args=[f"--batch={batch}"],
        build_report=False,
    )
    outcome = run(options, Progress())
    if outcome.outcome != "complete":
        raise SystemExit(f"run {outcome.run_dir} {outcome.outcome}: {outcome.detail}")
    analysis = analyse(load_run(outcome.run_dir))
    table = analysis.run.table
    found: dict[str, Measured] = {}
    for server in SERVERS:
        points = {m.scenario: m for m in analysis.results if m.server == server}
        loaded, single = points[ScenarioName.THROUGHPUT], points[ScenarioName.LATENCY]
        in_window = table[
            (table["server"] == server)
            & (table["scenario"] == ScenarioName.THROUGHPUT)
            & (table["t_sent"] >= loaded.window_start)
            & table["ok"]
        ]
        batch_sizes = in_window["batch_size"].dropna()
        found[server] = Measured(
            images_per_s=loaded.throughput_rps,
            p90_ms=None if loaded.p90_s is None else loaded.p90_s * 1000,
            single_p90_ms=None if single.p90_s is None else single.p90_s * 1000,
            mean_batch=float(batch_sizes.mean()) if len(batch_sizes) else None,
            verdict=f"{loaded.verdict}/{single.verdict}",
            reasons=loaded.reasons + single.reasons,
        )
        print(f"{server} batch {batch}: {found[server]}", flush=True)
    return found


def spread(values: list[float]) -> str:
    """Median [min-max]."""
    if not values:
        return "n/a"
    return f"{statistics.median(values):.3g} [{min(values):.3g}-{max(values):.3g}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/runs/bench-batching"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="longest throughput window")
    parser.add_argument("--requests", type=int, default=400, help="requests of the throughput point")
    args = parser.parse_args(argv)

    results: dict[str, dict[str, dict[int, list[Measured]]]] = {
        model: {server: {batch: [] for batch in BATCHES} for server in SERVERS} for model in MODELS
    }
    for repeat in range(args.repeats):
        for model, flags in MODELS.items():
            for batch in BATCHES:
                print(f"--- repeat {repeat + 1}/{args.repeats}: {model}, --batch {batch}", flush=True)
                for server, measured in measure(flags, batch, args).items():
                    results[model][server][batch].append(measured)

    lines = [
        f"| model | server | batch | images/s at {args.users} users | gain over batch 1 | p90 ms "
        "| single-stream p90 ms | p90 / single-stream p90 | mean batch | verdicts (loaded/single) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, by_server in results.items():
        for server, by_batch in by_server.items():
            for batch, runs in by_batch.items():
                gains = [
                    run.images_per_s / base.images_per_s
                    for run, base in zip(runs, by_batch[1], strict=True)
                    if base.images_per_s
                ]
                stretch = [run.p90_ms / run.single_p90_ms for run in runs if run.p90_ms and run.single_p90_ms]
                lines.append(
                    f"| {model} | {server} | {batch} | {spread([run.images_per_s for run in runs])} "
                    f"| {spread(gains) if batch != 1 else '1'} "
                    f"| {spread([run.p90_ms for run in runs if run.p90_ms])} "
                    f"| {spread([run.single_p90_ms for run in runs if run.single_p90_ms])} "
                    f"| {spread(stretch)} | {spread([run.mean_batch for run in runs if run.mean_batch])} "
                    f"| {', '.join(run.verdict for run in runs)} |"
                )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_batching.md").write_text(table + "\n")
    (args.out / "bench_batching.json").write_text(
        json.dumps(
            {
                model: {
                    server: {str(batch): [vars(run) for run in runs] for batch, runs in by_batch.items()}
                    for server, by_batch in by_server.items()
                }
                for model, by_server in results.items()
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
