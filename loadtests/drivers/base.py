"""The contract every load driver implements: one :class:`DriverInput` in, one
:class:`DriverOutput` out (the shape of vLLM's benchmark request functions).

A driver sends the load of one scenario's points to one server and hands each logical
request's result to the input's :class:`ResultSink`, with the phase it belongs to; it opens
and finishes each point through :data:`MeasurePoint` (ledger, CPU meter, run.json), so it
knows nothing of the run, its table or its run.json.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from loadtests.clients import CallResult, Client
from loadtests.scenarios import OpenLoopScenario, Phase, SoakScenario
from loadtests.session import Session
from reports.metrics.rules import ValidityRules
from reports.schema import PointRecord


class ResultSink(Protocol):
    """Receives each logical request's result, the phase (load point) it belongs to, its
    scheduled send time (open loop and bursts; None in closed loop) and the load process that
    sent it ("local", or a Locust worker's id)."""

    def __call__(self, result: CallResult, phase: Phase, t_scheduled: float | None, worker: str) -> None: ...


class OpenPoint(Protocol):
    """A load point being measured (:class:`loadtests.measure.PointMeasurement`)."""

    def live(self, text: str) -> None: ...

    def finish(
        self,
        t_start: float,
        t_end: float,
        t_drain_end: float | None,
        note: str,
        peak_gpu_bytes: int | None = None,
    ) -> PointRecord: ...


# (phase, plan shown as the point starts, pids of the processes sending its load) -> the point
MeasurePoint = Callable[[Phase, str, Callable[[], list[int]]], OpenPoint]


class ResourceWatch(Protocol):
    """The server's resources being sampled (:class:`loadtests.resources.ResourceSampler`)."""

    @property
    def peak_gpu_bytes(self) -> int | None: ...  # the ledger's peak over every sample so far


# (phase, seconds between samples) -> samples the server's resources while the block runs
SampleResources = Callable[[Phase, float], AbstractContextManager[ResourceWatch]]


@dataclass(frozen=True)
class DriverInput:
    """One scenario's load points against one server, and where their results go."""

    client: Client
    session: Session  # plain, client prepared; its base_url is the server's (Locust users open their own)
    phases: tuple[Phase, ...]  # in order; the closed loop runs them back to back as one load
    request_timeout_s: float
    sink: ResultSink
    measure: MeasurePoint
    check_alive: Callable[[], None]  # raises when the server under test has died
    # the time budget: the phase cut to what is left, or None to skip it. Applied as late as
    # the driver can: per burst or open-loop point; before Locust starts for the closed loop
    # (its phases are one shape)
    fit: Callable[[Phase], Phase | None]
    # returns once the server holds no request, or a timeout passed (then the next point records
    # what is left as its backlog)
    wait_idle: Callable[[], None]
    # closed loop only
    workers: int = 0  # Locust worker processes (0: users run in this process)
    image_path: Path | None = None  # what each worker process loads its client's image from
    work_dir: Path | None = None  # where the workers' log goes
    trial: int = 1  # which of the run's --repeat trials these points are
    rules: ValidityRules = field(default_factory=ValidityRules)  # what the points are judged by
    # open loop only
    open_loop: OpenLoopScenario | None = None  # the schedule and drain of each point
    seed: int = 1  # the run's seed (each point and trial its own stream: scenarios.point_seed)
    # soak only
    soak: SoakScenario | None = None  # its duration and sampling interval
    sample_resources: SampleResources | None = None  # None: nothing to sample (--target-url)


@dataclass(frozen=True)
class DriverOutput:
    """The points the driver ran, in order (points skipped by the budget are absent)."""

    points: tuple[PointRecord, ...]


Driver = Callable[[DriverInput], DriverOutput]
