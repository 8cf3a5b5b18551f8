"""One load point's measurement, the same whichever driver runs it (closed loop, bursts, open
loop): at its start the server's ledger is reset (the rows it clears are kept), Gradio's
profiler (where collected) cleared, the load processes' CPU meter started, the backlog the last
wait for idle left noted and the point announced; at its end the ledger and the profiler's
traces are pulled (rows, peak memory, drops) and the point's :class:`PointRecord` written to
run.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loadtests.cpumeter import CpuMeter
from loadtests.progress import Progress
from loadtests.provenance import RunRecord
from loadtests.recorder import Recorder
from loadtests.scenarios import Phase
from loadtests.targets import Target
from reports.schema import PointRecord


@dataclass(frozen=True)
class PointScope:
    """Where the points of one (server, client) pair and trial are measured and recorded."""

    target: Target
    client: str
    recorder: Recorder
    run_record: RunRecord
    progress: Progress
    trial: int = 1


class PointMeasurement:
    """A point being measured: begun by :func:`measure_point`, ended by :meth:`finish`."""

    def __init__(self, scope: PointScope, phase: Phase, meter: CpuMeter, backlog: int) -> None:
        self.scope = scope
        self.phase = phase
        self._meter = meter
        self.backlog = backlog

    def live(self, text: str) -> None:
        """The point's progress on the live status line (a terminal only)."""
        self.scope.progress.live(
            f"{self.scope.target.label} / {self.scope.client} / {self.phase.label}: {text}"
        )

    def finish(
        self,
        t_start: float,
        t_end: float,
        t_drain_end: float | None,
        note: str,
        peak_gpu_bytes: int | None = None,
    ) -> PointRecord:
        """Close the point over its window [t_start, t_end] (open loop: and its drain) and record
        it. ``peak_gpu_bytes``: a peak the driver saw before the ledger's last reset (a soak's
        samples reset it), kept where it is higher than the ledger's."""
        scope = self.scope
        ledger = scope.target.pull_ledger(scope.recorder)
        peaks = [p for p in (ledger.get("peak_gpu_bytes"), peak_gpu_bytes) if p is not None]
        if scope.target.profiler is not None:
            scope.target.profiler.end_point(t_start)
        if self.backlog:
            note += (
                f"; started with {self.backlog} requests still in the server "
                "(the wait for idle before it timed out)"
            )
        point = PointRecord(
            server=scope.target.label,
            client=scope.client,
            scenario=self.phase.scenario,
            load_point=self.phase.label,
            users=self.phase.users,
            rate=self.phase.rate,
            t_start=t_start,
            t_end=t_end,
            t_drain_end=t_drain_end,
            load_cpu_percent=self._meter.stop(),
            peak_gpu_bytes=max(peaks) if peaks else None,
            dropped=int(ledger.get("dropped") or 0),
            note=note,
            trial=scope.trial,
            backlog=self.backlog,
            give_up_s=self.phase.give_up_s,
            give_up_share=None if self.phase.give_up_s is None else self.phase.give_up_share,
        )
        scope.run_record.add_point(point)
        scope.progress.event(
            f"    done {point.server} / {point.client} / {point.scenario} {point.load_point}"
            f"{_trial_text(scope)}: {note}"
        )
        return point


def measure_point(
    scope: PointScope, phase: Phase, plan: str, load_pids: Callable[[], list[int]]
) -> PointMeasurement:
    """Begin measuring ``phase``: reset the ledger, start the CPU meter over ``load_pids()``
    (the processes sending the load), take the target's backlog and print the point with its
    ``plan``."""
    held = scope.target.reset_ledger(scope.recorder)
    if scope.target.profiler is not None:
        tags = {
            "server": scope.target.label,
            "client": scope.client,
            "scenario": phase.scenario,
            "load_point": phase.label,
            "trial": scope.trial,
        }
        scope.target.profiler.start_point(tags, server_idle=held == 0)
    backlog = scope.target.take_backlog()
    meter = CpuMeter(load_pids)
    meter.start()
    point = f"{scope.target.label} / {scope.client} / {phase.scenario} {phase.label}{_trial_text(scope)}"
    text = f"  {point}: {plan}"
    if backlog:
        text += f" (starts with {backlog} requests still in the server)"
    scope.progress.event(text)
    return PointMeasurement(scope, phase, meter, backlog)


def _trial_text(scope: PointScope) -> str:
    return f" [trial {scope.trial}]" if scope.run_record.data.get("repeat", 1) > 1 else ""
