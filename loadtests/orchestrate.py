"""One ``gvf run``: every chosen server in turn, every scenario against it, one table, one run.json.

Per server: start it in its own process group on a free port (or reach ``--target-url``),
and for each (client, scenario) hand the scenario's points to the driver it names
(:mod:`loadtests.drivers`), with a result sink that appends the table's rows and a point
measurement (:mod:`loadtests.measure`) that writes run.json's points; then join the ledger
into the table and stop the server.

When open-loop points are chosen, all servers' single-stream latency is measured first (a
first pass), because every server must be offered the same absolute rates: fractions of the
fastest server's single-stream rate.

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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from loadtests import budget, provenance
from loadtests.clients import CLIENTS, DEFAULT_CLIENTS, SERVER_FAMILY, CallResult, Client, make_client
from loadtests.drivers import DRIVERS, DriverInput, ResultSink
from loadtests.measure import PointScope, measure_point
from loadtests.progress import Progress
from loadtests.recorder import Recorder, make_row
from loadtests.scenarios import OpenLoopScenario, Phase, Profile, Scenario
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
from reports.load import read_table
from reports.metrics.points import point_metrics
from reports.metrics.rules import ValidityRules, rules_from_mapping
from reports.schema import RUN_FILE, PointRecord, ScenarioName

_POLL_S = 0.1
# how long a prepared client may take for its one-off discovery (Gradio's /config)
_PREPARE_S = 30.0


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


@dataclass
class RunOutcome:
    run_dir: Path
    outcome: str  # complete | failed | interrupted
    detail: str

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "interrupted": 130}.get(self.outcome, 1)


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
        self.single_stream: dict[str, float] = {}  # "server/client" -> requests/s
        self.t_started = time.time()
        self.share_end: float | None = None  # profiles with a time budget: this server's slice
        self.run_json = provenance.RunRecord(run_dir / RUN_FILE, self._initial_record())

    def _initial_record(self) -> dict[str, Any]:
        options = self.options
        return {
            "run_id": self.run_id,
            "profile": options.profile.name,
            "outcome": "running",
            "outcome_detail": "",
            "started": provenance.now_iso(),
            "ended": None,
            "git_sha": provenance.git_sha(),
            "versions": provenance.versions(),
            "host": provenance.host(),
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
            },
            "scenarios": {
                name: asdict(scenario)
                for name, scenario in options.profile.scenarios.items()
                if name in options.scenarios
            },
            "profile_detail": options.profile.describe(),
            "seed": options.seed,
            "validity": asdict(ValidityRules()),
            "points": [],
            "skipped": [],
            "added_scenarios": [],  # run although not chosen (e.g. latency, for open-loop rates)
            "single_stream_rps": {},
            "target_url": options.target_url,
        }

    # -- the whole run

    def execute(self) -> RunOutcome:
        outcome, detail = "complete", ""
        try:
            passes = self._passes()
            targets = self._targets()
            for pass_index, scenarios in enumerate(passes):
                for index, label in enumerate(targets):
                    self._start_share(len(targets) * (len(passes) - pass_index) - index)
                    self._run_target(label, scenarios, pass_index + 1)
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

    def _passes(self) -> list[list[str]]:
        chosen = [s for s in self.options.scenarios if s in self.options.profile.scenarios]
        if ScenarioName.OPEN_LOOP not in chosen:
            return [chosen]
        if ScenarioName.LATENCY not in chosen:
            latency = self.options.profile.scenarios[ScenarioName.LATENCY]
            self.run_json.data["added_scenarios"].append(
                {
                    "name": ScenarioName.LATENCY,
                    "why": "open-loop rates need every server's single-stream rate",
                }
            )
            self.run_json.data["scenarios"] = {
                ScenarioName.LATENCY: asdict(latency),
                **self.run_json.data["scenarios"],
            }
            self.run_json.write()
        return [[ScenarioName.LATENCY], [s for s in chosen if s != ScenarioName.LATENCY]]

    def _targets(self) -> list[str]:
        return [TARGET_URL_LABEL] if self.options.target_url else list(self.options.servers)

    def _clients_for(self, family: str, label: str) -> list[str]:
        if self.options.clients is None:
            return [DEFAULT_CLIENTS.get(label, DEFAULT_CLIENTS[family])]
        return [name for name in self.options.clients if CLIENTS[name].family == family]

    # -- one server

    def _target(self, label: str, pass_number: int) -> contextlib.AbstractContextManager[Target]:
        if self.options.target_url:
            return self._external_target(self.options.target_url)
        return self._started_target(label, pass_number)

    @contextlib.contextmanager
    def _external_target(self, url: str) -> Iterator[Target]:
        target, health = external_target(url)
        self._note_server(target.label, {"url": target.url, "health": health, "exit": None})
        yield target

    @contextlib.contextmanager
    def _started_target(self, label: str, pass_number: int) -> Iterator[Target]:
        profile = self.options.profile
        # the profile's server flags belong to its model (e.g. --sim-ms): another model refuses them
        profile_args = list(profile.server_args) if self.options.model == profile.model else []
        args = [
            "--model",
            self.options.model,
            *profile_args,
            *server_args_for(label, self.options.server_args),
        ]
        log_path = self.run_dir / f"server-{label}-{pass_number}.log"
        self.progress.event(f"starting {label}: python -m servers {label} {' '.join(args)}")
        gradio_tmp = self.run_dir / "gradio-tmp"  # the server makes its own directory inside it
        gradio_tmp.mkdir(exist_ok=True)
        try:
            process = start_server(label, args, log_path=log_path, env={"GRADIO_TEMP_DIR": str(gradio_tmp)})
        except ServerStartError as error:
            code = "" if error.exit_code is None else f" (exit code {error.exit_code})"
            self._note_server(label, {"args": args, "log": log_path.name, "exit": f"did not start{code}"})
            if error.exit_code == 2:  # argparse's exit: the server refused a flag; the run stops here
                raise ServerStartError(refusal_message(label, str(error)), 2) from error
            raise
        target = Target(label, process.url, process, SERVER_FAMILY[label])
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
        if not self.run_json.data["model"]:
            self.run_json.data["model"] = process.health.get("model", {})
            self.run_json.write()
        self.progress.event(f"  {process.health.get('startup_line', label)}")
        try:
            yield target
        finally:
            with contextlib.suppress(Exception):
                if process.alive:
                    target.pull_ledger(self.recorder)
            matched = self.recorder.join_ledger(label, target.ledger_rows.values())
            exit_text = process.exit_description()
            process.stop()
            server_info = self.run_json.data["servers"][label]
            server_info["exit"] = exit_text or "stopped by gvf"
            server_info.setdefault("starts", []).append(
                {
                    "log": log_path.name,
                    "url": process.url,
                    "exit": server_info["exit"],
                    "ledger_rows": len(target.ledger_rows),
                    "rows_joined": matched,
                }
            )
            self.run_json.write()
            shutil.rmtree(self.run_dir / "gradio-tmp", ignore_errors=True)

    def _note_server(self, label: str, info: dict[str, Any]) -> None:
        self.run_json.data["servers"].setdefault(label, {}).update(info)
        self.run_json.write()

    def _run_target(self, label: str, scenarios: list[str], pass_number: int) -> None:
        with self._target(label, pass_number) as target:
            for client_name in self._clients_for(target.family, label):
                client = make_client(client_name, self.image)
                session = PlainSession(target.url)
                client.prepare(session, time.time() + _PREPARE_S)
                for name in scenarios:
                    self._run_scenario(target, client, session, self.options.profile.scenarios[name])
                    target.check_alive()

    # -- one scenario

    def _run_scenario(
        self, target: Target, client: Client, session: PlainSession, scenario: Scenario
    ) -> None:
        scope = PointScope(target, client.name, self.recorder, self.run_json, self.progress)
        job = DriverInput(
            client=client,
            session=session,
            phases=tuple(self._phases(scenario)),
            request_timeout_s=self.options.profile.request_timeout_s,
            sink=self._sink(target, client),
            measure=partial(measure_point, scope),
            check_alive=target.check_alive,
            fit=partial(self._fit, target, client),
            wait_idle=partial(self._wait_idle, target),
            workers=self.options.workers,
            image_path=self.options.image,
            work_dir=self.run_dir,
            open_loop=scenario if isinstance(scenario, OpenLoopScenario) else None,
            seed=self.options.seed,
        )
        output = DRIVERS[scenario.driver](job)
        if scenario.name == ScenarioName.LATENCY and output.points:
            self._note_single_stream(target, client, output.points)
        self._wait_idle(target)

    def _phases(self, scenario: Scenario) -> list[Phase]:
        rules = ValidityRules()
        if not isinstance(scenario, OpenLoopScenario):
            return scenario.phases(rules)
        if not self.single_stream:
            raise RuntimeError(
                "open-loop needs a single-stream rate: the latency scenario left no measured "
                "(post-warm-up) request"
            )
        fastest = max(self.single_stream.values())
        self.run_json.data["open_loop_base_rps"] = fastest
        return scenario.phases(rules, fastest)

    def _sink(self, target: Target, client: Client) -> ResultSink:
        def append(result: CallResult, phase: Phase, t_scheduled: float | None, worker: str) -> None:
            row = make_row(
                result,
                run_id=self.run_id,
                server=target.label,
                client=client.name,
                phase=phase,
                worker=worker,
                t_scheduled=t_scheduled,
            )
            self.recorder.append(row)

        return append

    # -- the time budget

    def _start_share(self, targets_left: int) -> None:
        """This server's slice of the budget: what is left, less the later servers' startup."""
        budget_s = self.options.profile.budget_s
        if budget_s is not None:
            self.share_end = budget.share_end(budget_s, self.t_started, time.time(), targets_left)

    def _fit(self, target: Target, client: Client, phase: Phase) -> Phase | None:
        """The phase with its time box cut to this server's share of the profile's budget, or
        None (recorded in run.json) when its requests are predicted not to fit."""
        if self.share_end is None:
            return phase
        available = self.share_end - time.time()
        rate = self.single_stream.get(f"{target.label}/{client.name}") or max(
            self.single_stream.values(), default=0
        )
        fitted = budget.fit_phase(phase, available, rate)
        if fitted is None:
            budget_s = self.options.profile.budget_s or 0.0
            self.run_json.data["skipped"].append(
                {
                    "what": f"{target.label}/{client.name}/{phase.scenario}/{phase.label}",
                    "why": f"{phase.target_requests} requests at {rate:.2f}/s do not fit the "
                    f"{available:.0f} s left of this server's share of the {budget_s:.0f} s budget",
                }
            )
            self.run_json.write()
            self.progress.event(f"  skipped {phase.scenario} {phase.label}: does not fit the time budget")
        return fitted

    def _note_single_stream(self, target: Target, client: Client, points: Sequence[PointRecord]) -> None:
        """The single-stream rate of (server, client), which sizes open-loop rates and budgets.

        It is 1 / the median latency (p50) of the latency point's measured rows, the warm-up
        cut as the reports make it (reports.metrics.points): the rate one request at a time sustains.
        Not the point's measured throughput: with the few measured requests of the smoke
        profile, counting completions inside a window is quantised by the window's edges."""
        table, _truncated = read_table(self.recorder.table_path)
        rows = table[
            (table["server"] == target.label)
            & (table["client"] == client.name)
            & (table["scenario"] == ScenarioName.LATENCY)
        ]
        for m in point_metrics(rows, list(points), rules_from_mapping(self.run_json.data.get("validity"))):
            if m.p50_s:
                self.single_stream[f"{target.label}/{client.name}"] = 1.0 / m.p50_s
                self.run_json.data["single_stream_rps"] = dict(self.single_stream)
                self.run_json.write()

    def _wait_idle(self, target: Target) -> None:
        """Let abandoned requests (timeouts) finish before the next point measures anything;
        what a wait that times out leaves is the next point's backlog (PointRecord.backlog)."""
        left = target.wait_idle(self.options.profile.request_timeout_s)
        if left:
            self.progress.event(f"  {target.label} still holds {left} requests after the wait for idle")


def install_signal_handlers() -> None:
    """SIGTERM ends a run like Ctrl-C: servers stopped, rows kept, run.json says 'interrupted'."""
    import gevent

    main_greenlet = gevent.getcurrent()
    gevent.signal_handler(
        signal.SIGTERM, lambda: gevent.kill(main_greenlet, Interrupted("terminated by SIGTERM"))
    )


def run(options: RunOptions, progress: Progress | None = None) -> RunOutcome:
    return BenchmarkRun(options, progress or Progress()).execute()
