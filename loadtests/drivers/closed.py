"""The closed-loop driver: Locust users sending back to back, the scenario's phases run as one
:class:`~loadtests.locustfile.StepShape` (users carry over from one phase to the next, as a
spike needs), in this process or in Locust worker processes whose results come back to it as
messages.

Locust patches the interpreter (gevent), so it is imported only when a load starts, inside
``gvf run`` (which imports Locust before anything else), never at this module's import.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from loadtests.clients import CallResult
from loadtests.drivers.base import DriverInput, DriverOutput, OpenPoint
from loadtests.scenarios import Phase
from loadtests.serverproc import free_port
from reports.schema import PointRecord

LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfile.py"
WORKERS_LOG = "locust-workers.log"
_POLL_S = 0.1
_WORKERS_CONNECT_S = 60.0
_CALL_RESULT_FIELDS = frozenset(f.name for f in fields(CallResult))


def run_closed_loop(job: DriverInput) -> DriverOutput:
    """The phases that fit the budget, back to back; one point per phase."""
    phases = [fitted for planned in job.phases if (fitted := job.fit(planned))]
    if not phases:
        return DriverOutput(())
    load = LocustLoad(job)
    try:
        return DriverOutput(tuple(load.run_phases(phases)))
    finally:
        load.close()


class LocustLoad:
    """A Locust environment for one (server, client): local runner, or master + N workers."""

    def __init__(self, job: DriverInput) -> None:
        from locust.env import Environment
        from locust.event import Events

        from loadtests.locustfile import RESULT_MESSAGE, GvfUser

        self.job = job
        GvfUser.client_under_test = job.client
        GvfUser.timeout_s = job.request_timeout_s
        # one client timeout for the whole load: the run's (--client-timeout-s), the same in every phase
        self.give_up_s = job.phases[0].give_up_s if job.phases else None
        GvfUser.give_up_s = self.give_up_s
        self.env = Environment(
            user_classes=[GvfUser],
            host=job.session.base_url,
            events=Events(),
            stop_timeout=job.request_timeout_s,
        )
        self.worker_processes: list[subprocess.Popen[bytes]] = []
        self.phases: list[Phase] = []
        self.phase_starts: list[float] = []
        self.completed: list[int] = []
        self.measurements: list[OpenPoint] = []
        self.points: list[PointRecord] = []
        if job.workers > 0:
            port = free_port()
            self.runner = self.env.create_master_runner("127.0.0.1", port)
            self.runner.register_message(RESULT_MESSAGE, self._on_worker_message)
            self._start_workers(job.workers, port)
        else:
            self.runner = self.env.create_local_runner()
            self.env.events.request.add_listener(self._on_request)

    def _start_workers(self, workers: int, port: int) -> None:
        if self.job.image_path is None or self.job.work_dir is None:
            raise ValueError("Locust workers need DriverInput.image_path and work_dir")
        env = {
            **os.environ,
            "GVF_CLIENT": self.job.client.name,
            "GVF_IMAGE": str(self.job.image_path),
            "GVF_TIMEOUT_S": str(self.job.request_timeout_s),
            "GVF_CLIENT_TIMEOUT_S": "" if self.give_up_s is None else str(self.give_up_s),
        }
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
        command += ["--master-host", "127.0.0.1", "--master-port", str(port), "--loglevel", "WARNING"]
        log = open(self.job.work_dir / WORKERS_LOG, "ab")  # noqa: SIM115 (children hold it)
        with log:
            for _ in range(workers):
                self.worker_processes.append(
                    subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                    )
                )
        deadline = time.monotonic() + _WORKERS_CONNECT_S
        while self.runner.worker_count < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.worker_processes):
                raise RuntimeError(f"only {self.runner.worker_count} of {workers} Locust workers connected")
            time.sleep(_POLL_S)  # cooperative: gevent patched time.sleep

    def pids(self) -> list[int]:
        """The processes sending the load: the workers, or this one."""
        return [p.pid for p in self.worker_processes] or [os.getpid()]

    def _on_request(self, context: dict[str, Any], **_event: Any) -> None:
        self._record(context.get("gvf"), "local")

    def _on_worker_message(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        data = dict(msg.data)
        self._record(data, str(data.pop("worker", "")))

    def _record(self, data: dict[str, Any] | None, worker: str) -> None:
        if not data or not self.phases:
            return
        result = CallResult(**{k: v for k, v in data.items() if k in _CALL_RESULT_FIELDS})
        # a result belongs to the phase whose window holds its send
        index = max(bisect.bisect_right(self.phase_starts, result.t_sent) - 1, 0)
        self.completed[index] += 1
        self.job.sink(result, self.phases[index], None, worker)

    def run_phases(self, phases: list[Phase]) -> list[PointRecord]:
        """Run the phases as one StepShape; one PointRecord per phase."""
        from locust.runners import STATE_STOPPED

        from loadtests.locustfile import StepShape

        self.phases = phases
        self.phase_starts = []
        self.completed = [0] * len(phases)
        ended = False

        def on_phase(index: int | None) -> None:
            nonlocal ended
            if ended:
                return  # the last phase was ended by the loop below before the shape's tick
            ended = index is None
            now = time.time()
            previous = len(self.phase_starts) - 1
            # the boundary first: the ledger calls below yield (gevent), and a result arriving
            # meanwhile is attributed by its t_sent against phase_starts
            if index is not None:
                self.phase_starts.append(now)
            if previous >= 0:
                self._finish_point(previous, now)
            if index is None:
                return
            phase = phases[index]
            plan = f"up to {phase.target_requests} requests or {phase.max_s:.0f} s"
            self.measurements.append(self.job.measure(phase, plan, self.pids))

        self.env.shape_class = StepShape(phases, lambda i: self.completed[i], on_phase)
        self.env.shape_class.runner = self.runner
        self.runner.start_shape()
        while self.runner.shape_greenlet is not None or self.runner.state != STATE_STOPPED:
            try:
                self.job.check_alive()
            except Exception:
                self.runner.stop()
                raise
            i = len(self.phase_starts) - 1
            if 0 <= i < len(self.measurements):
                self.measurements[i].live(f"{self.completed[i]}/{phases[i].target_requests} requests")
                if i == len(phases) - 1 and 0 < phases[i].target_requests <= self.completed[i] and not ended:
                    # the last phase ends at its target, not at the shape's next tick (Locust ticks
                    # once a second): no second of requests beyond what the point needs
                    on_phase(None)
                    self.runner.stop()
            time.sleep(_POLL_S)  # cooperative: gevent patched time.sleep
        return self.points

    def _finish_point(self, index: int, t_end: float) -> None:
        note = f"{self.completed[index]} requests completed (target {self.phases[index].target_requests})"
        self.points.append(self.measurements[index].finish(self.phase_starts[index], t_end, None, note))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.quit()
        for process in self.worker_processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)  # quit() told them to exit
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group
            process.wait(timeout=10)
