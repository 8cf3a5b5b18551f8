"""``gvf``: the project's console script.

- ``gvf run``     benchmark the chosen servers with the chosen scenarios; writes a run directory
                  (requests.csv, run.json) and builds its report
- ``gvf tune``    each server at its best settings for a p90 target, and the bests compared
                  (loadtests.tune); ``gvf run --best-of TUNE_DIR`` reruns at the tuned flags
- ``gvf serve``   start one server in the foreground (``python -m servers KIND ...``)
- ``gvf calibrate``  measure a GPU profile (``python -m servers.calibrate ...``)
- ``gvf report``  build a report from run directories (reports.build)
- ``gvf list``    servers, clients, scenarios, profiles, model backends
- ``gvf export-space DIR``  a ready-to-push Hugging Face Space of the gradio server
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtests.orchestrate import RunOptions

# what `python -m servers --model` accepts (the server refuses anything else with a message)
BACKENDS = {
    "auto": "birefnet with CUDA and weights, else birefnet_native --random-weights; u2netp without CUDA",
    "sim": "simulated GPU: fixed service time, processor sharing when calls overlap (tests, what-ifs)",
    "u2netp": "U²-Net-p, real weights, CPU (the quick profile)",
    "birefnet": "BiRefNet via transformers (ZhengPeng7/BiRefNet, pinned revision)",
    "birefnet_native": "the project's own BiRefNet implementation (strict state-dict load)",
}
DEFAULT_OUT = Path("reports/runs")
DEFAULT_TUNE_OUT = Path("reports/tunes")


def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    from loadtests.clients import CLIENTS, SERVER_FAMILY
    from loadtests.scenarios import PROFILES, SCENARIOS
    from loadtests.trials import TRIAL_ORDERS

    servers = list(SERVER_FAMILY)
    parser = argparse.ArgumentParser(prog="gvf", description="gradio.Server vs FastAPI: what each costs you.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="benchmark servers; writes DIR/<YYYYmmdd-HHMMSS>-<profile>/")
    run.add_argument(
        "--servers",
        type=_csv_list,
        default=None,
        help="comma list (default: all three; a profile may keep a control server to some scenarios, "
        "e.g. quick runs fastapi-naive in the collision burst only: name it here to run it everywhere)",
    )
    run.add_argument(
        "--clients",
        type=_csv_list,
        default=None,
        help=f"comma list of {', '.join(CLIENTS)}; each runs against the servers it speaks to "
        "(default: fastapi for the FastAPI servers, gradio-b64 for gradio)",
    )
    run.add_argument(
        "--scenarios", type=_csv_list, default=None, help=f"comma list of {', '.join(SCENARIOS)}"
    )
    run.add_argument(
        "--profile", choices=list(PROFILES), default=None, help="default: quick without a GPU, else full"
    )
    run.add_argument("--model", choices=list(BACKENDS), default=None, help="default: the profile's")
    run.add_argument("--image", type=Path, default=None, help="input image (default: the profile's)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"runs directory (default {DEFAULT_OUT})")
    run.add_argument("--target-url", default=None, help="run against a server already up (no ledger join)")
    run.add_argument("--workers", type=int, default=0, help="Locust distributed mode with N worker processes")
    run.add_argument(
        "--seed", type=int, default=1, help="open-loop arrival seed; --trial-order random's seed"
    )
    run.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="measure every load point in N independent trials, the servers interleaved "
        "(default: the profile's)",
    )
    run.add_argument(
        "--trial-order",
        choices=TRIAL_ORDERS,
        default="interleaved",
        help="the servers' order within each trial of a point: the same every time (interleaved: "
        "trial 1 of A, B, C, then trial 2 of A, B, C), or shuffled with --seed (random)",
    )
    run.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="the run's time box, startups included (default: the profile's)",
    )
    run.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra server flag (repeat). KIND:FLAG goes to that server kind only, e.g. "
        "--server-arg=gradio:--concurrency=2 --server-arg=fastapi:--concurrency=2 "
        "--server-arg=fastapi:--lock-scope=request; a FLAG without a prefix goes to every server, "
        "e.g. --server-arg=--png-level=6. A server refuses a flag that means nothing for its kind "
        "(e.g. --concurrency for fastapi-naive): the run then stops as that server starts, with "
        "the server's message (servers start in --servers order)",
    )
    run.add_argument(
        "--gradio-profiling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run gradio servers with Gradio's profiler (GRADIO_PROFILING=1) and keep its traces per "
        "point in profiling.jsonl (default on: it costs no measurable time per request, see the README)",
    )
    run.add_argument(
        "--client-timeout-s",
        type=float,
        default=None,
        help="clients give up S seconds after a request was due (scheduled, or sent in closed loop): "
        "they close the connection (FastAPI) or the SSE stream (Gradio) and the row is 'abandoned'. "
        "In every scenario every request, except in abandon: there its impatient share (default: "
        "abandon's timeout_factor x the fastest single-stream latency; elsewhere none: a request "
        "waits up to the profile's request timeout)",
    )
    run.add_argument(
        "--soak-s",
        type=float,
        default=None,
        help="the soak scenario's duration in seconds (default: the profile's)",
    )
    run.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    run.add_argument(
        "--best-of",
        type=Path,
        default=None,
        metavar="TUNE_DIR",
        help="run each server at the best flags a `gvf tune` found (its tune.json), as KIND:FLAG "
        "server args; run.json records them under best_of",
    )
    _add_tune(commands, servers)

    serve = commands.add_parser("serve", help="start python -m servers KIND ... in the foreground")
    serve.add_argument("kind", choices=servers)
    serve.add_argument("server_args", nargs=argparse.REMAINDER, help="flags passed to the server")

    commands.add_parser("report", help="build a report from run directories (see gvf report --help)")
    commands.add_parser(
        "calibrate",
        help="measure a GPU profile that --model sim --sim-profile replays: python -m servers.calibrate "
        "(see gvf calibrate --help)",
    )

    commands.add_parser("list", help="servers, clients, scenarios, profiles, backends")
    _add_export_space(commands)
    return parser


def _add_tune(commands: argparse._SubParsersAction, servers: list[str]) -> None:
    from loadtests.tune import DEFAULT_BUDGET_S, DEFAULT_SLO_FACTOR, SEARCH_SPACE

    flags = sorted({d.flag for dims in SEARCH_SPACE.values() for d in dims})
    tune = commands.add_parser(
        "tune",
        help="search each server's flags for the most images/s with p90 within an SLO (README 'Tuning')",
    )
    tune.add_argument(
        "--servers", type=_csv_list, default=["gradio", "fastapi"], help="comma list (default gradio,fastapi)"
    )
    slo = tune.add_mutually_exclusive_group()
    slo.add_argument("--slo-p90-ms", type=float, default=None, help="the p90 target, ms")
    slo.add_argument(
        "--slo-factor",
        type=float,
        default=DEFAULT_SLO_FACTOR,
        help=f"the p90 target as this many times the fastest server's single-stream p90, measured first "
        f"(default {DEFAULT_SLO_FACTOR:g})",
    )
    tune.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        help=f"the whole tune's time box, startups included (default {DEFAULT_BUDGET_S:.0f})",
    )
    tune.add_argument("--model", choices=list(BACKENDS), default="auto", help="(default auto)")
    tune.add_argument("--image", type=Path, default=None, help="input image (default: the small test photo)")
    tune.add_argument(
        "--out", type=Path, default=None, help=f"the tune directory (default {DEFAULT_TUNE_OUT}/<time>-tune)"
    )
    tune.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra flag for every run's servers (repeat; KIND:FLAG for one kind), e.g. "
        "--server-arg=--sim-profile=h100-birefnet-swinl-fp16-1024",
    )
    tune.add_argument(
        "--only", type=_csv_list, default=None, help=f"search just these flags (of {', '.join(flags)})"
    )
    tune.add_argument("--repeat", type=int, default=2, help="trials per candidate (default 2)")
    tune.add_argument(
        "--final-repeat", type=int, default=3, help="trials of the default and best runs (default 3)"
    )
    tune.add_argument("--max-users", type=int, default=32, help="the highest closed-loop load (default 32)")
    tune.add_argument("--point-s", type=float, default=30.0, help="a load point's time box (default 30)")


def _tune(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from loadtests.clients import SERVER_FAMILY
    from loadtests.orchestrate import install_signal_handlers
    from loadtests.scenarios import SMALL_IMAGE
    from loadtests.targets import UnknownServerKind, split_server_arg
    from loadtests.tune import SEARCH_SPACE, Tune, TuneOptions, default_tune_dir

    for name in args.servers:
        if name not in SERVER_FAMILY:
            parser.error(f"unknown server {name!r}; known: {', '.join(SERVER_FAMILY)}")
    known = {d.flag for dims in SEARCH_SPACE.values() for d in dims}
    for flag in args.only or []:
        if flag not in known:
            parser.error(f"--only {flag!r}: not a flag the tune searches ({', '.join(sorted(known))})")
    searched = set(args.only or known)
    for arg in args.server_arg:
        try:
            _kind, flag = split_server_arg(arg)
        except UnknownServerKind as error:
            parser.error(f"--server-arg {arg!r}: {error}")
        name = flag.lstrip("-").split("=", 1)[0]
        if name in searched:
            parser.error(f"--server-arg {arg!r}: the tune sets --{name} itself (search without it: --only)")
    for flag, value, least in (
        ("--budget-s", args.budget_s, 0),
        ("--repeat", args.repeat, 1),
        ("--final-repeat", args.final_repeat, 2),
        ("--max-users", args.max_users, 1),
        ("--point-s", args.point_s, 0),
        ("--slo-factor", args.slo_factor, 0),
    ):
        if value < least or (least == 0 and value <= 0):
            parser.error(f"{flag} must be {'> 0' if least == 0 else f'>= {least}'}")
    if args.slo_p90_ms is not None and args.slo_p90_ms <= 0:
        parser.error("--slo-p90-ms must be > 0")
    options = TuneOptions(
        servers=args.servers,
        model=args.model,
        image=args.image or SMALL_IMAGE,
        out_dir=args.out or default_tune_dir(DEFAULT_TUNE_OUT),
        budget_s=args.budget_s,
        slo_p90_ms=args.slo_p90_ms,
        slo_factor=args.slo_factor,
        server_args=args.server_arg,
        only=args.only,
        repeat=args.repeat,
        final_repeat=args.final_repeat,
        max_users=args.max_users,
        point_s=args.point_s,
    )
    install_signal_handlers()
    return Tune(options).execute()


def _add_export_space(commands: argparse._SubParsersAction) -> None:
    from loadtests.space_export import DEFAULT_GPU_DURATION_S

    export = commands.add_parser(
        "export-space", help="write a ready-to-push Hugging Face Space of the gradio server into DIR"
    )
    export.add_argument("dir", type=Path)
    export.add_argument("--model", choices=list(BACKENDS), default="auto", help="the Space's --model")
    export.add_argument(
        "--gpu-duration",
        type=int,
        default=DEFAULT_GPU_DURATION_S,
        help=f"@spaces.GPU(duration=...) of the model call, seconds (default {DEFAULT_GPU_DURATION_S})",
    )
    export.add_argument(
        "--server-arg", action="append", default=[], help="extra flag for the Space's server (repeat)"
    )
    export.add_argument("--force", action="store_true", help="write into a folder that has files")


def _export_space(args: argparse.Namespace) -> int:
    from loadtests.space_export import ExportError, export_space

    server_args = ["--model", args.model, *args.server_arg]
    try:
        written = export_space(
            args.dir, server_args=server_args, gpu_duration_s=args.gpu_duration, force=args.force
        )
    except ExportError as error:
        print(f"gvf export-space: {error}", file=sys.stderr)
        return 2
    print(f"Space written to {args.dir}: " + ", ".join(path.name for path in written))
    print(
        f"push it: create a Gradio Space, then: cd {args.dir} && git init -b main && git add . && "
        "git commit -m 'gvf export-space' && git push --force https://huggingface.co/spaces/OWNER/NAME main"
    )
    return 0


def _list() -> int:
    from loadtests.clients import CLIENTS, SERVER_FAMILY
    from loadtests.scenarios import PROFILES, SCENARIOS

    print("servers:   " + ", ".join(SERVER_FAMILY))
    print("clients:")
    for name, client in CLIENTS.items():
        print(f"  {name:<14} [{client.family}] {client.description}")
    print("scenarios: " + ", ".join(SCENARIOS))
    print("profiles:")
    for name, profile in PROFILES.items():
        print(f"  {name:<6} model {profile.model}: {profile.description}")
    print("backends (--model):")
    for name, text in BACKENDS.items():
        print(f"  {name:<16} {text}")
    return 0


def run_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunOptions:
    """``gvf run``'s arguments, checked (``parser.error`` on a bad one), as the run's options."""
    from loadtests.clients import CLIENTS, SERVER_FAMILY
    from loadtests.orchestrate import RunOptions
    from loadtests.provenance import gpu_name
    from loadtests.scenarios import PROFILES, SCENARIOS
    from loadtests.targets import UnknownServerKind, split_server_arg
    from reports.schema import ScenarioName

    profile = PROFILES[args.profile or ("full" if gpu_name() is not None else "quick")]
    scenarios = args.scenarios or list(profile.default_scenarios)
    for name in scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    servers = args.servers or list(SERVER_FAMILY)
    for name in servers:
        if name not in SERVER_FAMILY:
            parser.error(f"unknown server {name!r}; known: {', '.join(SERVER_FAMILY)}")
    for name in args.clients or []:
        if name not in CLIENTS:
            parser.error(f"unknown client {name!r}; known: {', '.join(CLIENTS)}")
    for arg in args.server_arg:
        try:
            split_server_arg(arg)
        except UnknownServerKind as error:
            parser.error(f"--server-arg {arg!r}: {error}")
    best_of = _best_of(args, parser, servers)
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    repeat = profile.repeat if args.repeat is None else args.repeat
    if repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.budget_s is not None:
        if args.budget_s <= 0:
            parser.error("--budget-s must be > 0")
        profile = dataclasses.replace(profile, budget_s=args.budget_s)
    for flag, value, scenario, field in (
        ("--client-timeout-s", args.client_timeout_s, ScenarioName.ABANDON, "client_timeout_s"),
        ("--soak-s", args.soak_s, ScenarioName.SOAK, "soak_s"),
    ):
        if value is None:
            continue
        if value <= 0:
            parser.error(f"{flag} must be > 0")
        changed = dataclasses.replace(profile.scenarios[scenario], **{field: value})
        profile = dataclasses.replace(profile, scenarios={**profile.scenarios, scenario: changed})
    return RunOptions(
        profile=profile,
        servers=servers,
        scenarios=scenarios,
        out_dir=args.out,
        image=args.image or profile.image,
        model=args.model or profile.model,
        clients=args.clients,
        target_url=args.target_url,
        workers=args.workers,
        seed=args.seed,
        server_args=[*(best_of["server_args"] if best_of else []), *args.server_arg],
        build_report=not args.no_report,
        repeat=repeat,
        trial_order=args.trial_order,
        # a profile's choice of servers per scenario yields to servers named on the command line,
        # and means nothing for --target-url's one server
        scenario_servers={} if args.servers or args.target_url else dict(profile.scenario_servers),
        gradio_profiling=args.gradio_profiling,
        client_timeout_s=args.client_timeout_s,
        best_of=best_of,
    )


def _best_of(
    args: argparse.Namespace, parser: argparse.ArgumentParser, servers: list[str]
) -> dict[str, Any] | None:
    """``--best-of TUNE_DIR``: the tune's best flags for the chosen servers, as KIND:FLAG args and
    as run.json's record (refused beside a --server-arg that sets one of them)."""
    if args.best_of is None:
        return None
    from loadtests.targets import split_server_arg
    from loadtests.tune import TuneError, best_flags, tuned_server_args

    try:
        flags = best_flags(args.best_of)
    except TuneError as error:
        parser.error(f"--best-of: {error}")
    tuned = tuned_server_args(flags, servers)
    names = {(kind, flag.split("=", 1)[0]) for kind, flag in map(split_server_arg, tuned)}
    for arg in args.server_arg:
        kind, flag = split_server_arg(arg)
        name = flag.split("=", 1)[0]
        if any(n == name and (kind is None or kind == k) for k, n in names):
            parser.error(f"--server-arg {arg!r} sets {name}, which --best-of {args.best_of} sets too")
    return {
        "tune_dir": str(args.best_of),
        "flags": {server: flags.get(server, []) for server in servers},
        "server_args": tuned,
    }


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from loadtests.orchestrate import install_signal_handlers, run

    options = run_options(args, parser)
    install_signal_handlers()
    return run(options).exit_code


def _report(argv: list[str]) -> int:
    from reports.build import main as report_main

    return int(report_main(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["report"]:
        return _report(arguments[1:])  # reports.build parses (and documents) its own flags
    if arguments[:1] == ["calibrate"]:
        # a process of its own, as `gvf serve`: the load generator never imports servers/ (or torch)
        os.execv(sys.executable, [sys.executable, "-m", "servers.calibrate", *arguments[1:]])
    if arguments[:1] in (["run"], ["tune"]):
        # Locust runs inside `gvf run`: gevent must patch the standard library before
        # anything imports ssl or urllib3, opens sockets or starts threads.
        import locust  # noqa: F401
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.command == "list":
        return _list()
    if args.command == "export-space":
        return _export_space(args)
    if args.command == "tune":
        return _tune(args, parser)
    if args.command == "serve":
        server_args = [a for a in args.server_args if a != "--"]
        # exec: the server gets the terminal's signals directly, and its exit code is ours
        os.execv(sys.executable, [sys.executable, "-m", "servers", args.kind, *server_args])
    return _run(args, parser)


if __name__ == "__main__":
    sys.exit(main())
