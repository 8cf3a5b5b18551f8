"""One ``gvf run``: every chosen server in turn, every scenario against it, one table, one run.json.

Per server: start it in its own process group on a free port, wait for ``/healthz``, and for
each (client, scenario): reset the ledger at each load point's start, pull it at its end
(rows and peak memory per point), run the point (Locust for closed loop, the open-loop
driver for bursts and schedules), then join the ledger into the table and stop the server.

When open-loop points are chosen, all servers' single-stream latency is measured first (a
first pass), because every server must be offered the same absolute rates: fractions of the
fastest server's single-stream rate.

This module runs inside a gevent-patched process (Locust is a library here): ``gvf run``
imports Locust before anything else. Ctrl-C, SIGTERM or a server that dies stops every
server, keeps the rows, records the outcome in run.json and returns non-zero.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from loadtests.clients import CLIENTS, DEFAULT_CLIENTS, SERVER_FAMILY, CallResult, Client, make_client
from loadtests.openloop import OpenLoopDriver
from loadtests.progress import Progress
from loadtests.recorder import Recorder, make_row
from loadtests.scenarios import OpenLoopScenario, Phase, Profile, Scenario, point_seed, poisson_schedule
from loadtests.serverproc import ServerProcess, ServerStartError, free_port, get_json, start_server
from loadtests.session import LocustSession, PlainSession
from reports.load import point_records, read_table
from reports.metrics import ValidityRules, point_metrics, rules_from_mapping
from reports.schema import RUN_FILE, PointRecord, ScenarioName

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
TARGET = "target"  # the table's server column for --target-url runs
_POLL_S = 0.1
# what a server's start (model load, warm-up) is assumed to take when splitting a budget
_STARTUP_ALLOWANCE_S = 6.0


class ServerDied(RuntimeError):
    """The server under test exited during the run."""


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
    report: Path | None = None

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "interrupted": 130}.get(self.outcome, 1)


# --- run.json ------------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_sha() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _host() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = None
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            done = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            gpu = (
                done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None
            )
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "hostname": socket.gethostname()}


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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the server under test ---------------------------------------------------------------


@dataclass
class Target:
    """A server under test: one we started (ledger joined) or one given by --target-url."""

    label: str
    url: str
    process: ServerProcess | None
    family: str
    ledger_rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def has_ledger(self) -> bool:
        return self.process is not None

    def check_alive(self) -> None:
        if self.process is not None and not self.process.alive:
            raise ServerDied(f"{self.label} {self.process.exit_description()} during the run")

    def reset_ledger(self, recorder: Recorder) -> None:
        """Start a point: clear the rows and the peak-memory counter. The server answers with
        the rows it cleared, taken atomically, so a request completing during the reset (under
        load, between points) keeps its ledger row."""
        if not self.has_ledger:
            return
        cleared = _post_json(self.url + "/ledger/reset")
        self._keep(cleared.get("requests") or [], recorder)

    def pull_ledger(self, recorder: Recorder) -> dict[str, Any]:
        """The ledger's rows since the last reset (kept for the join) and its counters."""
        if not self.has_ledger:
            return {}
        ledger = get_json(self.url + "/ledger", timeout_s=30.0)
        self._keep(ledger.get("requests", []), recorder)
        return ledger

    def _keep(self, rows: list[dict[str, Any]], recorder: Recorder) -> None:
        fresh = [row for row in rows if str(row.get("request_id")) not in self.ledger_rows]
        for row in fresh:
            self.ledger_rows[str(row["request_id"])] = row
        recorder.save_ledger(self.label, fresh)

    def idle(self) -> bool:
        """No request in the server: none in flight and none accepted but not yet admitted
        (``queued``: Gradio's queue, whose ledger row opens only when its function starts;
        FastAPI's semaphore waiters, also in ``in_flight``). A server without ``queued`` (older,
        or reached by --target-url) counts as 0 there."""
        if not self.has_ledger:
            return True
        ledger = get_json(self.url + "/ledger", timeout_s=30.0)
        return int(ledger.get("in_flight") or 0) == 0 and int(ledger.get("queued") or 0) == 0


def _post_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=30) as response:
        answer = json.loads(response.read() or b"{}")
    return answer if isinstance(answer, dict) else {}


# --- load-process CPU --------------------------------------------------------------------


class CpuMeter:
    """CPU of the busiest load process over a window, in % of one core: a Python load
    process cannot use more than one core, so that is where it saturates."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self._start: dict[int, tuple[float, float]] = {}

    def start(self) -> None:
        self._start = {pid: (self._cpu(pid), time.monotonic()) for pid in self._pids()}

    def stop(self) -> float | None:
        busiest: float | None = None
        for pid, (cpu_start, t_start) in self._start.items():
            elapsed = time.monotonic() - t_start
            cpu = self._cpu(pid)
            if elapsed > 0 and cpu >= 0:
                share = 100.0 * (cpu - cpu_start) / elapsed
                busiest = share if busiest is None else max(busiest, share)
        return busiest

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return -1.0
        return float(times.user + times.system)


# --- Locust (closed loop) ----------------------------------------------------------------


class LocustLoad:
    """A Locust environment for one (server, client): local runner, or master + N workers."""

    def __init__(self, run: Run, target: Target, client: Client, workers: int) -> None:
        from locust.env import Environment
        from locust.event import Events

        from loadtests.locustfile import RESULT_MESSAGE, GvfUser

        self.run = run
        self.target = target
        self.client = client
        GvfUser.client_under_test = client
        GvfUser.timeout_s = run.options.profile.request_timeout_s
        self.env = Environment(
            user_classes=[GvfUser],
            host=target.url,
            events=Events(),
            stop_timeout=run.options.profile.request_timeout_s,
        )
        self.worker_processes: list[subprocess.Popen[bytes]] = []
        self.phases: list[Phase] = []
        self.phase_starts: list[float] = []
        self.completed: list[int] = []
        if workers > 0:
            port = free_port()
            self.runner = self.env.create_master_runner("127.0.0.1", port)
            self.runner.register_message(RESULT_MESSAGE, self._on_worker_message)
            self._start_workers(workers, port)
        else:
            self.runner = self.env.create_local_runner()
            self.env.events.request.add_listener(self._on_request)

    def _start_workers(self, workers: int, port: int) -> None:
        env = {
            **os.environ,
            "GVF_CLIENT": self.client.name,
            "GVF_IMAGE": str(self.run.options.image),
            "GVF_TIMEOUT_S": str(self.run.options.profile.request_timeout_s),
        }
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
        command += ["--master-host", "127.0.0.1", "--master-port", str(port), "--loglevel", "WARNING"]
        log = open(self.run.run_dir / "locust-workers.log", "ab")  # noqa: SIM115 (children hold it)
        with log:
            for _ in range(workers):
                self.worker_processes.append(
                    subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                    )
                )
        deadline = time.monotonic() + 60
        while self.runner.worker_count < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.worker_processes):
                raise RuntimeError(f"only {self.runner.worker_count} of {workers} Locust workers connected")
            time.sleep(_POLL_S)  # cooperative: gevent patched time.sleep

    def pids(self) -> list[int]:
        return [p.pid for p in self.worker_processes] or [os.getpid()]

    def _on_request(self, context: dict[str, Any], **_event: Any) -> None:
        self._record(context.get("gvf"), "local")

    def _on_worker_message(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        data = dict(msg.data)
        self._record(data, str(data.pop("worker", "")))

    def _record(self, data: dict[str, Any] | None, worker: str) -> None:
        if not data or not self.phases:
            return
        known = {f.name for f in fields(CallResult)}
        result = CallResult(**{k: v for k, v in data.items() if k in known})
        index = max(bisect.bisect_right(self.phase_starts, result.t_sent) - 1, 0)
        self.completed[index] += 1
        self.run.record_result(result, self.target, self.client, self.phases[index], worker)

    def run_phases(self, phases: list[Phase]) -> None:
        """Run the phases as one StepShape; one PointRecord per phase."""
        from locust.runners import STATE_STOPPED

        from loadtests.locustfile import StepShape

        self.phases = phases
        self.phase_starts = []
        self.completed = [0] * len(phases)
        meter = CpuMeter(self.pids)

        def on_phase(index: int | None) -> None:
            now = time.time()
            previous = len(self.phase_starts) - 1
            # the boundary first: the ledger calls below yield (gevent), and a result arriving
            # meanwhile is attributed by its t_sent against phase_starts
            if index is not None:
                self.phase_starts.append(now)
            if previous >= 0:
                self._finish_point(previous, now, meter)
            if index is None:
                return
            self.target.reset_ledger(self.run.recorder)
            meter.start()
            self.run.progress.event(
                f"  {self.target.label} / {self.client.name} / {phases[index].scenario} "
                f"{phases[index].label}: up to {phases[index].target_requests} requests "
                f"or {phases[index].max_s:.0f} s"
            )

        self.env.shape_class = StepShape(phases, lambda i: self.completed[i], on_phase)
        self.env.shape_class.runner = self.runner
        self.runner.start_shape()
        while self.runner.shape_greenlet is not None or self.runner.state != STATE_STOPPED:
            try:
                self.target.check_alive()
            except ServerDied:
                self.runner.stop()
                raise
            i = len(self.phase_starts) - 1
            if i >= 0:
                self.run.progress.live(
                    f"{self.target.label} / {self.client.name} / {phases[i].label}: "
                    f"{self.completed[i]}/{phases[i].target_requests} requests"
                )
            time.sleep(_POLL_S)  # cooperative: gevent patched time.sleep

    def _finish_point(self, index: int, t_end: float, meter: CpuMeter) -> None:
        phase = self.phases[index]
        note = f"{self.completed[index]} requests completed (target {phase.target_requests})"
        self.run.record_point(
            self.target, self.client, phase, self.phase_starts[index], t_end, None, meter, note
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.quit()
        for process in self.worker_processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)  # quit() told them to exit
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group
            process.wait(timeout=10)


# --- the run ------------------------------------------------------------------------


class Run:
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
        self.active_driver: OpenLoopDriver | None = None
        self.t_started = time.time()
        self.share_end: float | None = None  # profiles with a time budget: this server's slice
        self.run_json = RunRecord(run_dir / RUN_FILE, self._initial_record())

    def _initial_record(self) -> dict[str, Any]:
        options = self.options
        return {
            "run_id": self.run_id,
            "profile": options.profile.name,
            "outcome": "running",
            "outcome_detail": "",
            "started": _now_iso(),
            "ended": None,
            "git_sha": _git_sha(),
            "versions": {
                "python": platform.python_version(),
                **{name: _version(name) for name in ("torch", "gradio", "fastapi", "locust", "urllib3")},
            },
            "host": _host(),
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

    # -- rows and points

    def record_result(
        self,
        result: CallResult,
        target: Target,
        client: Client,
        phase: Phase,
        worker: str,
        t_scheduled: float | None = None,
    ) -> None:
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

    def add_point(self, point: PointRecord) -> None:
        self.run_json.add_point(point)
        self.progress.event(
            f"    done {point.server} / {point.client} / {point.scenario} {point.load_point}: {point.note}"
        )

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
            if self.active_driver is not None:
                self.active_driver.stop()
            self.recorder.close()
        self.run_json.data.update(outcome=outcome, outcome_detail=detail, ended=_now_iso())
        self.run_json.write()
        self.progress.event(f"run {outcome}{': ' + detail if detail else ''} -> {self.run_dir}")
        report = self._build_report() if self.options.build_report else None
        return RunOutcome(self.run_dir, outcome, detail, report)

    def _build_report(self) -> Path | None:
        try:
            from reports.build import build_report
        except ImportError as error:
            self.progress.event(f"report not built: {error}")
            return None
        try:
            report = build_report([self.run_dir], None)
        except Exception as error:  # the run's data stands without its report
            self.progress.event(f"report failed: {type(error).__name__}: {error}")
            return None
        self.progress.event(f"report: {report}")
        return report

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
        return [TARGET] if self.options.target_url else list(self.options.servers)

    def _clients_for(self, family: str, label: str) -> list[str]:
        if self.options.clients is None:
            return [DEFAULT_CLIENTS.get(label, DEFAULT_CLIENTS[family])]
        return [name for name in self.options.clients if CLIENTS[name].family == family]

    @contextlib.contextmanager
    def _target(self, label: str, pass_number: int) -> Iterator[Target]:
        if self.options.target_url:
            url = self.options.target_url.rstrip("/")
            health = _probe_health(url)
            family = SERVER_FAMILY.get(str(health.get("server", "")), "") or _guess_family(url)
            self._note_server(label, {"url": url, "health": health, "exit": None})
            yield Target(label, url, None, family)
            return
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
                raise ServerStartError(_refusal_message(label, str(error)), 2) from error
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
                client.prepare(session, time.time() + 30)
                for name in scenarios:
                    self._run_scenario(target, client, session, self.options.profile.scenarios[name])
                    target.check_alive()

    def _run_scenario(
        self, target: Target, client: Client, session: PlainSession, scenario: Scenario
    ) -> None:
        rules = ValidityRules()
        if isinstance(scenario, OpenLoopScenario):
            if not self.single_stream:
                raise RuntimeError(
                    "open-loop needs a single-stream rate: the latency scenario left no measured "
                    "(post-warm-up) request"
                )
            fastest = max(self.single_stream.values())
            self.run_json.data["open_loop_base_rps"] = fastest
            self._run_open_loop(target, client, session, scenario, scenario.phases(rules, fastest))
        elif scenario.name == ScenarioName.COLLISIONS:
            self._run_bursts(target, client, session, scenario.phases(rules))
        else:
            phases = [
                fitted for p in scenario.phases(rules) if (fitted := self._fit_budget(target, client, p))
            ]
            if not phases:
                return
            load = LocustLoad(self, target, client, self.options.workers)
            try:
                load.run_phases(phases)
            finally:
                load.close()
            if scenario.name == ScenarioName.LATENCY:
                self._note_single_stream(target, client)
        self._wait_idle(target)

    def _fit_budget(self, target: Target, client: Client, phase: Phase) -> Phase | None:
        """The phase with its time box cut to this server's share of the profile's budget, or
        None (recorded in run.json) when its requests are predicted not to fit."""
        if self.share_end is None:
            return phase
        available = self.share_end - time.time()
        rate = self.single_stream.get(f"{target.label}/{client.name}") or max(
            self.single_stream.values(), default=0
        )
        if rate and phase.target_requests / rate > available:
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
            return None
        return replace(phase, max_s=max(min(phase.max_s, available), 1.0))

    def _start_share(self, targets_left: int) -> None:
        """This server's slice of the budget: what is left, less the later servers' startup."""
        budget = self.options.profile.budget_s
        if budget is None:
            return
        left = self.t_started + budget - time.time() - _STARTUP_ALLOWANCE_S * (targets_left - 1)
        self.share_end = time.time() + left / targets_left

    def _note_single_stream(self, target: Target, client: Client) -> None:
        """The single-stream rate of (server, client), which sizes open-loop rates and budgets.

        It is 1 / the median latency (p50) of the latency point's measured rows, the warm-up
        cut as the reports make it (reports.metrics): the rate one request at a time sustains.
        Not the point's measured throughput: with the few measured requests of the smoke
        profile, counting completions inside a window is quantised by the window's edges."""
        table, _truncated = read_table(self.recorder.table_path)
        rows = table[
            (table["server"] == target.label)
            & (table["client"] == client.name)
            & (table["scenario"] == ScenarioName.LATENCY)
        ]
        points = [
            p
            for p in point_records(self.run_json.data)
            if (p.server, p.client, p.scenario) == (target.label, client.name, ScenarioName.LATENCY)
        ]
        for m in point_metrics(rows, points, rules_from_mapping(self.run_json.data.get("validity"))):
            if m.p50_s:
                self.single_stream[f"{target.label}/{client.name}"] = 1.0 / m.p50_s
                self.run_json.data["single_stream_rps"] = dict(self.single_stream)
                self.run_json.write()

    def _run_bursts(self, target: Target, client: Client, session: PlainSession, phases: list[Phase]) -> None:
        for planned in phases:
            phase = self._fit_budget(target, client, planned)
            if phase is None:
                continue
            target.reset_ledger(self.recorder)
            meter = CpuMeter(lambda: [os.getpid()])
            meter.start()
            done = 0
            t_start = time.time()
            driver = self._driver(target, client, session, phase)
            self.progress.event(
                f"  {target.label} / {client.name} / collisions {phase.label}: "
                f"{phase.target_requests} requests in bursts"
            )
            while done < phase.target_requests and time.time() - t_start < phase.max_s:
                summary = driver.run_burst(phase.users or 1, self.options.profile.request_timeout_s)
                done += summary.completed + summary.timed_out
                target.check_alive()
                self.progress.live(
                    f"{target.label} / {client.name} / {phase.label}: {done}/{phase.target_requests}"
                )
            self.record_point(target, client, phase, t_start, time.time(), None, meter, f"{done} requests")

    def _run_open_loop(
        self,
        target: Target,
        client: Client,
        session: PlainSession,
        scenario: OpenLoopScenario,
        phases: list[Phase],
    ) -> None:
        for index, phase in enumerate(phases):
            window = scenario.window_s(phase)
            offsets = poisson_schedule(phase.rate or 1.0, window, point_seed(self.options.seed, index))
            target.reset_ledger(self.recorder)
            meter = CpuMeter(lambda: [os.getpid()])
            meter.start()
            t_start = time.time() + 0.1
            drain_end = t_start + window + scenario.drain_factor * window
            self.progress.event(
                f"  {target.label} / {client.name} / open-loop {phase.label}: "
                f"{len(offsets)} arrivals over {window:.1f} s"
            )
            driver = self._driver(target, client, session, phase)
            summary = driver.run([t_start + offset for offset in offsets], drain_end)
            self.active_driver = None
            target.check_alive()
            self.record_point(
                target,
                client,
                phase,
                t_start,
                t_start + window,
                drain_end,
                meter,
                f"{summary.sent} sent, {summary.completed} returned, {summary.timed_out} timed out",
            )
            self._wait_idle(target)

    def _driver(self, target: Target, client: Client, session: PlainSession, phase: Phase) -> OpenLoopDriver:
        def sink(result: CallResult, t_scheduled: float) -> None:
            self.record_result(result, target, client, phase, "local", t_scheduled)

        self.active_driver = OpenLoopDriver(client, session, sink)
        return self.active_driver

    def record_point(
        self,
        target: Target,
        client: Client,
        phase: Phase,
        t_start: float,
        t_end: float,
        t_drain_end: float | None,
        meter: CpuMeter,
        note: str,
    ) -> None:
        ledger = target.pull_ledger(self.recorder)
        self.add_point(
            PointRecord(
                server=target.label,
                client=client.name,
                scenario=phase.scenario,
                load_point=phase.label,
                users=phase.users,
                rate=phase.rate,
                t_start=t_start,
                t_end=t_end,
                t_drain_end=t_drain_end,
                load_cpu_percent=meter.stop(),
                peak_gpu_bytes=ledger.get("peak_gpu_bytes"),
                dropped=int(ledger.get("dropped") or 0),
                note=note,
            )
        )

    def _wait_idle(self, target: Target) -> None:
        """Let abandoned requests (timeouts) finish before the next point measures anything."""
        deadline = time.time() + self.options.profile.request_timeout_s
        while target.has_ledger and time.time() < deadline:
            target.check_alive()
            if target.idle():
                return
            time.sleep(_POLL_S)  # cooperative: gevent patched time.sleep


def split_server_arg(arg: str) -> tuple[str | None, str]:
    """(kind, flag) of one ``--server-arg``: ``KIND:FLAG`` goes to that server kind only, anything
    else (kind None) to every server. Only a known kind before the first ':' is a prefix, so a
    value holding a colon (a path, a URL) passes unchanged."""
    kind, colon, flag = arg.partition(":")
    if colon and kind in SERVER_FAMILY:
        return kind, flag
    return None, arg


def server_args_for(kind: str, server_args: list[str]) -> list[str]:
    """The ``--server-arg`` flags that go to ``kind``, in the order given."""
    return [flag for prefix, flag in map(split_server_arg, server_args) if prefix in (None, kind)]


def _refusal_message(label: str, error: str) -> str:
    """A server that exited with argparse's code 2 refused its flags: its own error line(s), and
    how to give a flag to one kind only. The load generator does not import servers/, so the
    server's own refusal is the check (it comes before the model is built)."""
    lines = [line.strip() for line in error.splitlines() if ": error:" in line]
    reason = "; ".join(lines) or error.splitlines()[-1]
    return (
        f"{label} refused its flags ({reason}). An unprefixed --server-arg goes to every server; "
        f"give a flag meant for one kind as --server-arg={label}:FLAG"
    )


def _probe_health(url: str) -> dict[str, Any]:
    try:
        health = get_json(url + "/healthz", timeout_s=10.0)
    except Exception:
        return {}
    return health if isinstance(health, dict) else {}


def _guess_family(url: str) -> str:
    try:
        get_json(url + "/config", timeout_s=10.0)
    except Exception:
        return "fastapi"
    return "gradio"


def install_signal_handlers() -> None:
    """SIGTERM ends a run like Ctrl-C: servers stopped, rows kept, run.json says 'interrupted'."""
    import gevent

    main_greenlet = gevent.getcurrent()
    gevent.signal_handler(
        signal.SIGTERM, lambda: gevent.kill(main_greenlet, Interrupted("terminated by SIGTERM"))
    )


def run(options: RunOptions, progress: Progress | None = None) -> RunOutcome:
    return Run(options, progress or Progress()).execute()
