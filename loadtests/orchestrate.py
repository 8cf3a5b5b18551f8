"""One ``gvf run``: every chosen server started up front, every load point measured in
``--repeat`` trials with the servers interleaved, one table, one run.json.

Start: each server in its own process group on a free port (or the ``--target-url`` one), each
(server, client) pair's client prepared (what it measured there, e.g. MCP's session set-up, goes
to run.json ``client_setup``), one warm-up call through each, the server's start-up time and
memory recorded (run.json ``servers.<kind>.footprint``), then every server paused (SIGSTOP on its
group) until its turn, so that an idle server takes no CPU from the one being measured. The
pairs are the run's clients on each server, plus the clients a scenario brings (``mcp``: the
server's REST base64 client and the MCP client), each scenario run only by its own.

Then rounds (:mod:`loadtests.trials`): one trial of one unit (a load point, or a spike's chained
points) on each pair in turn. A pair's turn: resume its server, wait for idle (what a wait that
times out leaves is the point's backlog), hand the unit's points to the driver its scenario
names (:mod:`loadtests.drivers`) with a result sink that appends the table's rows and a point
measurement (:mod:`loadtests.measure`) that writes run.json's points, wait for idle, pause. A
round predicted not to fit the time budget is skipped on every server (:mod:`loadtests.budget`).
At the end each server's ledger is joined into the table and the server stopped.

Open-loop rates (and the abandon and soak scenarios') are fractions of the fastest server's
single-stream rate, measured by the first trial of the ``latency`` scenario, which then runs
first (and is added, for that trial only, when not chosen). A soak runs in the first trial only,
its server's resources sampled (:mod:`loadtests.resources`).

This module runs inside a gevent-patched process (Locust is a library here): ``gvf run``
imports Locust before anything else. Ctrl-C, SIGTERM or a server that dies stops every
server, keeps the rows, records the outcome in run.json and returns non-zero.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from loadtests import budget, provenance
from loadtests.clients import CLIENTS, DEFAULT_CLIENTS, SERVER_FAMILY, CallResult, Client, make_client
from loadtests.drivers import DRIVERS, DriverInput, ResultSink
from loadtests.drivers.base import SampleResources
from loadtests.measure import PointScope, measure_point
from loadtests.profiler import PROFILING_ENV, ProfilerTraces
from loadtests.progress import Progress
from loadtests.recorder import Recorder, make_row
from loadtests.resources import sampler_for
from loadtests.scenarios import (
    AbandonScenario,
    McpScenario,
    OpenLoopScenario,
    Phase,
    Profile,
    Scenario,
    SoakScenario,
)
from loadtests.serverproc import ServerStartError, start_server
from loadtests.session import LocustSession, PlainSession
from loadtests.targets import (
    TARGET_URL_LABEL,
    ServerDied,
    Target,
    external_target,
    refusal_message,
    server_args_for,
)
from loadtests.trials import Round, TrialOrder, Unit, pair_key, scenario_units, trial_rounds
from reports.load import read_table
from reports.metrics.points import point_metrics
from reports.metrics.rules import ValidityRules
from reports.schema import PROFILING_FILE, RUN_FILE, PointRecord, ScenarioName

_PREPARE_S = 30.0  # how long a prepared client may take for its one-off discovery (Gradio's /config)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM."""


@dataclass
class RunOptions:
    profile: Profile
    servers: list[str]
    scenarios: list[str]
    out_dir: Path
    image: Path
    model: str
    clients: list[str] | None = None  # None: DEFAULT_CLIENTS per server
    target_url: str | None = None
    workers: int = 0
    seed: int = 1
    server_args: list[str] = field(default_factory=list)
    build_report: bool = True
    repeat: int = 1  # trials of every load point
    trial_order: TrialOrder = "interleaved"
    # scenario -> the server kinds that run it (the profile's, unless --servers was given)
    scenario_servers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # run gradio servers with Gradio's profiler and collect its traces (README "Load tests": on
    # by default, its cost per request is not measurable against the 2 ms disagreement it checks)
    gradio_profiling: bool = True
    # every request gives up this many seconds after it was due (--client-timeout-s; the abandon
    # scenario applies it to its impatient share only, through its own client_timeout_s)
    client_timeout_s: float | None = None
    # gvf run --best-of: the tune directory and the flags it gave each server (already in server_args)
    best_of: dict[str, Any] | None = None


@dataclass
class RunOutcome:
    run_dir: Path
    outcome: str  # complete | failed | interrupted
    detail: str

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "interrupted": 130}.get(self.outcome, 1)


@dataclass(frozen=True)
class Pair:
    """A server under test and one client that speaks its protocol (prepared, with its session)."""

    target: Target
    client: Client
    session: PlainSession

    @property
    def key(self) -> str:
        return pair_key(self.target.label, self.client.name)


class BenchmarkRun:
    """One ``gvf run`` from its options to its outcome (the loaded result is reports.load.Run)."""

    def __init__(self, options: RunOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        run_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{options.profile.name}"
        run_dir = options.out_dir / run_id
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = options.out_dir / f"{run_id}-{suffix}"
        run_dir.mkdir(parents=True)
        self.run_id = run_dir.name
        self.run_dir = run_dir
        self.image = options.image.read_bytes()
        self.recorder = Recorder(run_dir)
        self.rules = ValidityRules()
        self.pairs: dict[str, Pair] = {}  # by pair key, in start order
        self.phases: dict[str, list[Phase]] = {}  # scenario -> its points in this run
        self.units: list[Unit] = []  # what the rounds run, once the servers are up
        self.single_stream: dict[str, float] = {}  # pair key -> requests/s
        self.t_started = time.time()
        self.run_json = provenance.RunRecord(run_dir / RUN_FILE, self._initial_record())

    def _initial_record(self) -> dict[str, Any]:
        options = self.options
        return {
            "run_id": self.run_id,
            "profile": options.profile.name,
            **provenance.record_header(),
            "model": {},
            "servers": {},
            "load_generator": {
                "http_session": {
                    "closed-loop": LocustSession.kind,
                    "open-loop and bursts": PlainSession.kind,
                },
                "workers": options.workers,
                "pid": os.getpid(),
                "image": str(options.image),
                "image_bytes": len(self.image),
                "idle_servers": "paused (SIGSTOP on the process group) while another server is measured",
            },
            "scenarios": {
                name: asdict(scenario)
                for name, scenario in options.profile.scenarios.items()
                if name in options.scenarios
            },
            "scenario_servers": {name: list(kinds) for name, kinds in options.scenario_servers.items()},
            "servers_not_started": [],  # chosen servers no chosen scenario runs on
            "profile_detail": options.profile.describe(),
            "seed": options.seed,
            "repeat": options.repeat,
            "trial_order_rule": options.trial_order,
            "trial_order": [],  # the rounds as they ran (README "Load tests")
            "validity": asdict(self.rules),
            "points": [],
            "skipped": [],
            "added_scenarios": [],  # run although not chosen (e.g. latency, for open-loop rates)
            "single_stream_rps": {},
            # pair key -> what its client measured or found as it was prepared (MCP: the session set-up)
            "client_setup": {},
            "target_url": options.target_url,
            "gradio_profiling": {"enabled": options.gradio_profiling, "file": None},
            "client_timeout_s": options.client_timeout_s,
            "best_of": options.best_of,
        }

    # -- the whole run

    def execute(self) -> RunOutcome:
        outcome, detail = "complete", ""
        try:
            with contextlib.ExitStack() as servers:
                self._start_all(servers)
                pairs = list(self.pairs)
                options = self.options
                self.units = self._units()
                for trial_round in trial_rounds(
                    self.units, pairs, options.repeat, options.trial_order, options.seed
                ):
                    self._run_round(trial_round)
        except ServerDied as error:
            outcome, detail = "failed", str(error)
        except ServerStartError as error:
            outcome, detail = "failed", f"server did not start: {error}"
        except KeyboardInterrupt as error:
            outcome, detail = "interrupted", str(error) or "interrupted by Ctrl-C"
        except Exception as error:
            outcome, detail = "failed", f"{type(error).__name__}: {error}"
        finally:
            self.recorder.close()
        self.run_json.data.update(outcome=outcome, outcome_detail=detail, ended=provenance.now_iso())
        self.run_json.write()
        self.progress.event(f"run {outcome}{': ' + detail if detail else ''} -> {self.run_dir}")
        if self.options.build_report:
            self._build_report()
        return RunOutcome(self.run_dir, outcome, detail)

    def _build_report(self) -> None:
        from reports.build import build_report

        try:
            report = build_report([self.run_dir], None)
        except Exception as error:  # the run's data stands without its report
            self.progress.event(f"report failed: {type(error).__name__}: {error}")
            return
        self.progress.event(f"report: {report}")

    def _chosen(self) -> list[str]:
        """The chosen scenarios this profile defines, in the order given."""
        return [s for s in self.options.scenarios if s in self.options.profile.scenarios]

    def _units(self) -> list[Unit]:
        """The chosen scenarios' units; latency first when open-loop needs its rates (and
        added for the first trial when not chosen)."""
        profile = self.options.profile
        chosen = self._chosen()
        rated = [s for s in chosen if isinstance(profile.scenarios[s], OpenLoopScenario | SoakScenario)]
        added_latency = bool(rated) and ScenarioName.LATENCY not in chosen
        if rated:
            chosen = [ScenarioName.LATENCY, *(s for s in chosen if s != ScenarioName.LATENCY)]
        if added_latency:
            self.run_json.data["added_scenarios"].append(
                {
                    "name": ScenarioName.LATENCY,
                    "why": f"{', '.join(rated)} rates need every server's single-stream rate "
                    "(first trial only)",
                }
            )
            latency = profile.scenarios[ScenarioName.LATENCY]
            self.run_json.data["scenarios"] = {
                ScenarioName.LATENCY: asdict(latency),
                **self.run_json.data["scenarios"],
            }
            self.run_json.write()
        units: list[Unit] = []
        targets = {pair.target.label: pair.target for pair in self.pairs.values()}.values()
        for name in chosen:
            scenario = profile.scenarios[name]
            # rated points have no rates before the first latency trial: counted, not built
            if isinstance(scenario, OpenLoopScenario):
                count = len(scenario.fractions)
            else:
                count = 1 if isinstance(scenario, SoakScenario) else len(self._phases(name))
            kinds = self.options.scenario_servers.get(name)
            units += scenario_units(
                name,
                count,
                chained=scenario.chained,
                servers=frozenset(kinds) if kinds is not None else None,
                first_trial_only=(added_latency and name == ScenarioName.LATENCY)
                or isinstance(scenario, SoakScenario),
                clients=frozenset(c for target in targets for c in self._clients_for(target, scenario)),
            )
        return units

    def _phases(self, name: str) -> list[Phase]:
        """The scenario's points in this run, sized for its trials (open loop: once its rates are known)."""
        if name not in self.phases:
            scenario = self.options.profile.scenarios[name]
            repeat = self.options.repeat
            if isinstance(scenario, OpenLoopScenario | SoakScenario):
                # the fastest of the pairs that run a rated scenario (another scenario's pairs, e.g.
                # mcp's, may have a single-stream rate too)
                fastest = max(
                    (
                        rate
                        for key, rate in self.single_stream.items()
                        if any(unit.scenario == name and unit.runs_on(key) for unit in self.units)
                    ),
                    default=None,
                )
                if fastest is None:
                    raise RuntimeError(
                        f"{name} needs a single-stream rate: the latency scenario left no measured "
                        "(post-warm-up) request"
                    )
                self.run_json.data["open_loop_base_rps"] = fastest
                phases = scenario.phases(self.rules, fastest, repeat)
            else:
                phases = scenario.phases(self.rules, repeat)
            client_timeout_s = self.options.client_timeout_s
            if client_timeout_s is not None and not isinstance(scenario, AbandonScenario):
                phases = [replace(phase, give_up_s=client_timeout_s) for phase in phases]
            self.phases[name] = phases
        return self.phases[name]

    def _clients_for(self, target: Target, scenario: Scenario | None = None) -> list[str]:
        """The clients that run ``scenario`` (None: the run's own) on ``target``: the scenario's
        own where it brings them (mcp), else ``--clients``, else the server's default."""
        if isinstance(scenario, McpScenario):
            return list(scenario.clients(target.family))
        if self.options.clients is None:
            return [DEFAULT_CLIENTS.get(target.label, DEFAULT_CLIENTS[target.family])]
        return [name for name in self.options.clients if CLIENTS[name].speaks_to(target.family)]

    def _scenarios_on(self, label: str) -> list[str]:
        """The chosen scenarios that run on the server ``label`` (a profile may keep one to some)."""
        return [name for name in self._chosen() if label in self.options.scenario_servers.get(name, (label,))]

    def _pair_clients(self, target: Target) -> list[str]:
        """Every client a chosen scenario runs on ``target``, each once, in first-use order (the
        latency pass that open loop may add runs with open loop's clients)."""
        scenarios = [self.options.profile.scenarios[name] for name in self._scenarios_on(target.label)]
        return list(dict.fromkeys(c for scenario in scenarios for c in self._clients_for(target, scenario)))

    # -- the servers

    def _start_all(self, servers: contextlib.ExitStack) -> None:
        """Start every server a chosen scenario runs on (or reach the --target-url one), prepare
        each pair's client, then pause the server until its first turn."""
        labels = [TARGET_URL_LABEL] if self.options.target_url else list(self.options.servers)
        for label in labels:
            if not self._scenarios_on(label):
                why = "the profile runs none of the chosen scenarios on it"
                self.run_json.data["servers_not_started"].append({"server": label, "why": why})
                self.progress.event(f"not starting {label}: {why}")
                continue
            target = servers.enter_context(self._target(label))
            for client_name in self._pair_clients(target):
                client = make_client(client_name, self.image)
                session = PlainSession(target.url)
                client.prepare(session, time.time() + _PREPARE_S)
                pair = Pair(target, client, session)
                self.pairs[pair.key] = pair
                if client.preparation:
                    self.run_json.data["client_setup"][pair.key] = client.preparation
            self._warm_up(target)
            target.pause()

    def _warm_up(self, target: Target) -> None:
        """One call through each of the server's clients before any point, so that no trial
        pays a cold path (the first connection, a framework's first call of an endpoint); the
        server's RSS after it is its warm footprint."""
        calls = []
        for pair in [p for p in self.pairs.values() if p.target is target]:
            deadline = time.time() + self.options.profile.request_timeout_s
            result = pair.client.call(pair.session, f"warmup-{uuid.uuid4().hex}", deadline)
            calls.append({"client": pair.client.name, "ok": result.ok, "error": result.error})
            if not result.ok:
                self.progress.event(f"  the warm-up call of {pair.key} failed: {result.error}")
        info: dict[str, Any] = {"warmup_calls": calls}
        if target.process is not None:
            footprint = self.run_json.data["servers"][target.label]["footprint"]
            info["footprint"] = {**footprint, "rss_warm_bytes": target.process.rss_bytes()}
        self._note_server(target.label, info)

    def _target(self, label: str) -> contextlib.AbstractContextManager[Target]:
        if self.options.target_url:
            return self._external_target(self.options.target_url)
        return self._started_target(label)

    @contextlib.contextmanager
    def _external_target(self, url: str) -> Iterator[Target]:
        target, health = external_target(url)
        self._note_server(target.label, {"url": target.url, "health": health, "exit": None})
        yield target

    @contextlib.contextmanager
    def _started_target(self, label: str) -> Iterator[Target]:
        profile = self.options.profile
        # the profile's server flags belong to its model (e.g. --sim-ms): another model refuses them
        profile_args = list(profile.server_args) if self.options.model == profile.model else []
        args = [
            "--model",
            self.options.model,
            *profile_args,
            *server_args_for(label, self.options.server_args),
        ]
        log_path = self.run_dir / f"server-{label}.log"
        self.progress.event(f"starting {label}: python -m servers {label} {' '.join(args)}")
        temp_dir = self._temp_dir(label)
        temp_dir.mkdir(parents=True, exist_ok=True)
        env = {"GRADIO_TEMP_DIR": str(temp_dir)}
        profiling = self.options.gradio_profiling and SERVER_FAMILY[label] == "gradio"
        if profiling:
            env.update(PROFILING_ENV)
        try:
            process = start_server(label, args, log_path=log_path, env=env)
        except ServerStartError as error:
            code = "" if error.exit_code is None else f" (exit code {error.exit_code})"
            self._note_server(label, {"args": args, "log": log_path.name, "exit": f"did not start{code}"})
            if error.exit_code == 2:  # argparse's exit: the server refused a flag; the run stops here
                raise ServerStartError(refusal_message(label, str(error)), 2) from error
            raise
        target = Target(label, process.url, process, SERVER_FAMILY[label])
        if profiling:
            target.profiler = ProfilerTraces(process.url, self.recorder)
            self.run_json.data["gradio_profiling"]["file"] = PROFILING_FILE
        self._note_server(
            label,
            {
                "command": process.command,
                "pid": process.popen.pid,  # also its process group id
                "flags": process.health.get("flags", {}),
                "startup_line": process.health.get("startup_line", ""),
                "torch_threads": process.health.get("torch_threads"),
                "concurrency": process.health.get("concurrency"),
                "lock_scope": process.health.get("lock_scope"),
                "url": process.url,
                "log": log_path.name,
                "exit": None,
            },
        )
        self._note_server(
            label,
            {"footprint": {"startup_s": process.startup_s, "rss_idle_bytes": process.rss_bytes()}},
        )
        if not self.run_json.data["model"]:
            self.run_json.data["model"] = process.health.get("model", {})
            self.run_json.write()
        self.progress.event(f"  {process.health.get('startup_line', label)}")
        try:
            yield target
        finally:
            process.resume()  # a paused server answers nothing
            with contextlib.suppress(Exception):
                if process.alive:
                    target.pull_ledger(self.recorder)
                    if target.profiler is not None:
                        target.profiler.end_point()
            matched = self.recorder.join_ledger(label, target.ledger_rows.values())
            exit_text = process.exit_description()
            server_info = self.run_json.data["servers"][label]
            if process.alive:
                server_info["footprint"].update(
                    rss_end_bytes=process.rss_bytes(), requests_served=len(target.ledger_rows)
                )
            process.stop()
            server_info["exit"] = exit_text or "stopped by gvf"
            server_info.update(ledger_rows=len(target.ledger_rows), rows_joined=matched)
            self.run_json.write()
            shutil.rmtree(temp_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                temp_dir.parent.rmdir()  # once the last server's is gone

    def _note_server(self, label: str, info: dict[str, Any]) -> None:
        self.run_json.data["servers"].setdefault(label, {}).update(info)
        self.run_json.write()

    # -- one round: one trial of one unit on every pair in turn

    def _run_round(self, trial_round: Round) -> None:
        unit = trial_round.unit
        scenario = self.options.profile.scenarios[unit.scenario]
        phases = [self._phases(unit.scenario)[index] for index in unit.points]
        labels = [phase.label for phase in phases]
        what = f"trial {trial_round.trial} of {unit.scenario} {', '.join(labels)}"
        if not self._round_fits(trial_round, phases, what):
            return
        self.run_json.data["trial_order"].append(
            {
                "trial": trial_round.trial,
                "scenario": unit.scenario,
                "load_points": labels,
                "order": list(trial_round.order),
                "t_start": time.time(),
            }
        )
        self.run_json.write()
        self.progress.event(f"{what}: {', '.join(trial_round.order)}")
        for key in trial_round.order:
            self._run_unit(self.pairs[key], scenario, phases, trial_round.trial)

    def _round_fits(self, trial_round: Round, phases: list[Phase], what: str) -> bool:
        """Whether the round is predicted to fit what is left of the budget; a round that does
        not is skipped on every server and listed in run.json."""
        budget_s = self.options.profile.budget_s
        if budget_s is None:
            return True
        predicted = budget.round_s([(phases, self._rate_of(key)) for key in trial_round.order])
        left = self.t_started + budget_s - time.time()
        if predicted is None or predicted <= left:
            return True
        self.run_json.data["skipped"].append(
            {
                "what": f"{what} on {', '.join(trial_round.order)}",
                "why": f"predicted {predicted:.0f} s (at each server's single-stream rate) does not fit "
                f"the {max(left, 0):.0f} s left of the {budget_s:.0f} s budget",
            }
        )
        self.run_json.write()
        self.progress.event(f"skipped {what}: does not fit the time budget")
        return False

    def _run_unit(self, pair: Pair, scenario: Scenario, phases: list[Phase], trial: int) -> None:
        """The unit's points on one pair: its server resumed, let go idle before and after, paused."""
        target = pair.target
        target.resume()
        try:
            self._wait_idle(target)
            scope = PointScope(target, pair.client.name, self.recorder, self.run_json, self.progress, trial)
            job = DriverInput(
                client=pair.client,
                session=pair.session,
                phases=tuple(phases),
                request_timeout_s=self.options.profile.request_timeout_s,
                sink=self._sink(pair, trial),
                measure=partial(measure_point, scope),
                check_alive=target.check_alive,
                fit=partial(self._fit, pair),
                wait_idle=partial(self._wait_idle, target),
                workers=self.options.workers,
                image_path=self.options.image,
                work_dir=self.run_dir,
                trial=trial,
                rules=self.rules,
                open_loop=scenario if isinstance(scenario, OpenLoopScenario) else None,
                seed=self.options.seed,
                soak=scenario if isinstance(scenario, SoakScenario) else None,
                sample_resources=self._sampler(pair, trial),
            )
            output = DRIVERS[scenario.driver](job)
            if scenario.driver == "closed-loop":
                self._note_single_stream(pair, output.points)
            self._wait_idle(target)
        finally:
            target.pause()

    def _sampler(self, pair: Pair, trial: int) -> SampleResources | None:
        """How a soak samples the pair's server: only one gvf started (it reads its process)."""
        target = pair.target
        if target.process is None:
            return None
        tags: dict[str, str | int] = {
            "run_id": self.run_id,
            "server": target.label,
            "client": pair.client.name,
            "trial": trial,
        }
        return sampler_for(target, self.recorder, tags, self._temp_dir(target.label))

    def _temp_dir(self, label: str) -> Path:
        """Where a started server's temp files go (GRADIO_TEMP_DIR; Gradio makes its own folder in it)."""
        return self.run_dir / "tmp" / label

    def _sink(self, pair: Pair, trial: int) -> ResultSink:
        def append(result: CallResult, phase: Phase, t_scheduled: float | None, worker: str) -> None:
            row = make_row(
                result,
                run_id=self.run_id,
                server=pair.target.label,
                client=pair.client.name,
                phase=phase,
                worker=worker,
                t_scheduled=t_scheduled,
                trial=trial,
            )
            self.recorder.append(row)

        return append

    # -- the time budget

    def _rate_of(self, key: str) -> float | None:
        """The pair's single-stream rate, else the fastest measured (None before any)."""
        return self.single_stream.get(key) or max(self.single_stream.values(), default=None)

    def _fit(self, pair: Pair, phase: Phase) -> Phase | None:
        """The phase with its time box cut to what is left of the budget (never below what it
        is predicted to take: its round was admitted on every server)."""
        budget_s = self.options.profile.budget_s
        if budget_s is None:
            return phase
        left = self.t_started + budget_s - time.time()
        return budget.time_box(phase, left, self._rate_of(pair.key))

    def _note_single_stream(self, pair: Pair, points: Sequence[PointRecord]) -> None:
        """The pair's single-stream rate, from its first one-user closed-loop point (latency, or
        a sweep's users=1), which sizes open-loop rates and budgets.

        It is 1 / the median latency (p50) of the point's measured rows, the warm-up cut as the
        reports make it (reports.metrics.points): the rate one request at a time sustains. Not
        the point's measured throughput: with the few measured requests of the smoke profile,
        counting completions inside a window is quantised by the window's edges."""
        single = [p for p in points if p.users == 1 and p.scenario != ScenarioName.SPIKE]
        if pair.key in self.single_stream or not single:
            return
        point = single[0]
        table, _truncated = read_table(self.recorder.table_path)
        rows = table[
            (table["server"] == point.server)
            & (table["client"] == point.client)
            & (table["scenario"] == point.scenario)
            & (table["load_point"] == point.load_point)
            & (table["trial"] == point.trial)
        ]
        for m in point_metrics(rows, [point], self.rules):
            if m.p50_s:
                self.single_stream[pair.key] = 1.0 / m.p50_s
                self.run_json.data["single_stream_rps"] = dict(self.single_stream)
                self.run_json.write()

    def _wait_idle(self, target: Target) -> None:
        """Let abandoned requests (timeouts) finish before the next point measures anything;
        what a wait that times out leaves is the next point's backlog (PointRecord.backlog)."""
        left = target.wait_idle(self.options.profile.request_timeout_s)
        if left:
            self.progress.event(f"  {target.label} still holds {left} requests after the wait for idle")


def install_signal_handlers() -> None:
    """Ctrl-C and SIGTERM end a run: servers stopped, rows kept, run.json says 'interrupted'.

    Both are delivered to the main greenlet, the run's, as :class:`Interrupted`. Python's own
    SIGINT handler would raise KeyboardInterrupt in whichever greenlet runs at that moment, and
    Locust's runner swallows one that lands while it spawns users (it quits its runner and the
    run would go on to the next point)."""
    import gevent

    main_greenlet = gevent.getcurrent()
    for signum, why in ((signal.SIGTERM, "terminated by SIGTERM"), (signal.SIGINT, "interrupted by Ctrl-C")):
        gevent.signal_handler(signum, partial(gevent.kill, main_greenlet, Interrupted(why)))


def run(options: RunOptions, progress: Progress | None = None) -> RunOutcome:
    return BenchmarkRun(options, progress or Progress()).execute()
