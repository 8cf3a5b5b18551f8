"""What a driver runs inside, for driver and measurement tests: a real point scope (a started
server as the target, the run's recorder and run.json in a temporary directory, progress lines
captured in memory), a sink that keeps what it receives, and the DriverInput joining them."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from loadtests.clients import SERVER_FAMILY, CallResult, make_client
from loadtests.drivers.base import DriverInput, MeasurePoint
from loadtests.measure import PointScope, measure_point
from loadtests.progress import Progress
from loadtests.provenance import RunRecord
from loadtests.recorder import Recorder
from loadtests.scenarios import Phase
from loadtests.serverproc import ServerProcess
from loadtests.session import PlainSession
from loadtests.targets import Target
from reports.schema import RUN_FILE
from tests.helpers.servers import small_jpeg


def point_scope(server: ServerProcess, run_dir: Path, client: str = "fastapi") -> PointScope:
    target = Target(server.kind, server.url, server, SERVER_FAMILY[server.kind])
    return PointScope(
        target=target,
        client=client,
        recorder=Recorder(run_dir),
        run_record=RunRecord(run_dir / RUN_FILE, {"points": []}),
        progress=Progress(io.StringIO(), live=False),
    )


def measure_in(scope: PointScope) -> MeasurePoint:
    """The scope's measurement, as a driver's DriverInput.measure."""
    return partial(measure_point, scope)


def progress_text(scope: PointScope) -> str:
    stream = scope.progress.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


@dataclass(frozen=True)
class Received:
    result: CallResult
    phase: Phase
    t_scheduled: float | None
    worker: str


@dataclass
class CollectingSink:
    """A ResultSink that keeps every result it receives (thread-safe)."""

    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, result: CallResult, phase: Phase, t_scheduled: float | None, worker: str) -> None:
        with self._lock:
            self.received.append(Received(result, phase, t_scheduled, worker))

    def of(self, phase: Phase) -> list[Received]:
        return [r for r in self.received if r.phase == phase]


def driver_input(
    scope: PointScope,
    phases: Sequence[Phase],
    sink: CollectingSink,
    fit: Callable[[Phase], Phase | None] = lambda phase: phase,
    **extra: Any,
) -> DriverInput:
    """The fastapi client against the scope's server, measured in the scope."""
    session = PlainSession(scope.target.url)
    return DriverInput(
        client=make_client(scope.client, small_jpeg()),
        session=session,
        phases=tuple(phases),
        request_timeout_s=10.0,
        sink=sink,
        measure=measure_in(scope),
        check_alive=scope.target.check_alive,
        fit=fit,
        wait_idle=extra.pop("wait_idle", lambda: None),
        **extra,
    )
