"""The open-loop, burst and soak drivers: each request leaves at its scheduled time, whatever
the server does.

Closed-loop users wait for a response before sending again, so an overloaded server slows
its own offered load (coordinated omission). Here every request has its own thread, started
a little ahead of its scheduled time and sleeping until it, so a slow response never delays
a later send; latency then counts from ``t_scheduled`` and the send lag (``t_sent −
t_scheduled``) is recorded to prove the schedule was kept.

Requests still open when the drain ends are recorded as timeouts with ``t_done`` = drain
end (docs/design.md §5), never dropped. A request with a give-up time (the point's client
timeout, counted from its scheduled time: a user's patience runs from when they asked) closes
its connection then and is recorded as abandoned. Bursts (the collisions scenario) are the same
mechanism with K identical scheduled times; a soak is an open-loop schedule at a fixed rate
for a fixed time with the server's resources sampled alongside. Runs on the plain session, in
or outside a gevent process.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from loadtests.clients import CallResult, Client
from loadtests.drivers.base import DriverInput, DriverOutput
from loadtests.scenarios import Phase, give_ups, point_seed
from loadtests.session import Session

ArrivalSink = Callable[[CallResult, float], None]  # (result, t_scheduled)

# A request's thread starts this long before its scheduled time: thread start-up (and the
# GIL) then cost slack, not send lag.
LEAD_S = 0.02
# How long after the drain end the sender waits for threads to report their timeout.
_REPORT_GRACE_S = 2.0
# An open-loop point's first arrival is scheduled this long after the point is set up.
_START_DELAY_S = 0.1
TIMEOUT_ERROR = "timeout: still open at drain end"


@dataclass(frozen=True)
class SendSummary:
    sent: int
    completed: int  # returned before the drain end (ok or not)
    timed_out: int  # still open at the drain end


class ScheduledSender:
    """Sends one request per scheduled wall-clock time, each from its own thread."""

    def __init__(self, client: Client, session: Session, sink: ArrivalSink) -> None:
        self.client = client
        self.session = session
        self.sink = sink
        self._lock = threading.Lock()

    def burst(self, size: int, timeout_s: float, give_up: Sequence[float | None] = ()) -> SendSummary:
        """``size`` requests released at the same instant; returns once all have drained."""
        t_release = time.time() + LEAD_S + 0.001 * size  # slack to start every thread
        return self.send([t_release] * size, t_release + timeout_s, give_up)

    def send(
        self, scheduled: Sequence[float], drain_end: float, give_up: Sequence[float | None] = ()
    ) -> SendSummary:
        """Fire a request at each ``scheduled`` wall-clock time (ascending); wait until all
        returned or ``drain_end`` passed; record what is still open as timeouts. ``give_up``:
        per request, the seconds after its scheduled time at which it gives up (None, or a
        short sequence: never)."""
        open_requests: dict[int, tuple[str, float]] = {}  # index -> (request id, t_scheduled)
        t_called: dict[int, float] = {}  # index -> when its thread called the client
        all_done = threading.Event()
        counts = {"sent": 0, "completed": 0, "timed_out": 0}
        firing_done = False

        def fire(index: int, request_id: str, t_scheduled: float) -> None:
            delay = t_scheduled - time.time()
            if delay > 0:
                time.sleep(delay)
            with self._lock:
                t_called[index] = time.time()
            patience = give_up[index] if index < len(give_up) else None
            give_up_at = None if patience is None else t_scheduled + patience
            result = self.client.call(self.session, request_id, drain_end, give_up_at)
            with self._lock:
                if open_requests.pop(index, None) is None:
                    return  # already recorded as a timeout by the sender
                if not result.ok and result.t_done >= drain_end:
                    result = replace(result, t_done=drain_end, status=0, error=TIMEOUT_ERROR)
                    counts["timed_out"] += 1
                else:
                    counts["completed"] += 1
                if firing_done and not open_requests:
                    all_done.set()
            self.sink(result, t_scheduled)

        for index, t_scheduled in enumerate(scheduled):
            time.sleep(max(t_scheduled - LEAD_S - time.time(), 0))
            request_id = uuid.uuid4().hex
            with self._lock:
                open_requests[index] = (request_id, t_scheduled)
            counts["sent"] += 1
            threading.Thread(target=fire, args=(index, request_id, t_scheduled), daemon=True).start()
        with self._lock:
            firing_done = True
            if not open_requests:
                all_done.set()
        all_done.wait(max(drain_end + _REPORT_GRACE_S - time.time(), 0))
        with self._lock:
            stuck = [(index, *entry, t_called.get(index)) for index, entry in sorted(open_requests.items())]
            open_requests.clear()
            counts["timed_out"] += len(stuck)
        for _index, request_id, t_scheduled, t_sent in stuck:
            # never returned, not even at its deadline: the sender records it, with the time its
            # thread sent it (the send lag shows), or as never sent by the drain end
            error = TIMEOUT_ERROR if t_sent is not None else f"{TIMEOUT_ERROR} (never sent)"
            sent = drain_end if t_sent is None else t_sent
            self.sink(CallResult(request_id, sent, drain_end, 0, False, error, 0), t_scheduled)
        return SendSummary(counts["sent"], counts["completed"], counts["timed_out"])


def _this_process() -> list[int]:
    return [os.getpid()]


def _fitted(job: DriverInput) -> Iterator[tuple[Phase, int]]:
    """The job's points that fit the time budget (cut to it), each with the seed of its own
    arrival stream (and give-up draw) in this trial."""
    for planned in job.phases:
        phase = job.fit(planned)
        if phase is not None:
            yield phase, point_seed(job.seed, phase.index, job.trial)


def _give_up_plan(phase: Phase) -> str:
    """The point's client timeout, as its plan line says it ("" where nobody gives up)."""
    if phase.give_up_s is None:
        return ""
    if phase.give_up_share >= 1:
        return f"; every request gives up after {phase.give_up_s:.3g} s"
    return f"; {phase.give_up_share:.0%} of the requests give up after {phase.give_up_s:.3g} s"


def _sender(job: DriverInput, phase: Phase) -> ScheduledSender:
    def arrived(result: CallResult, t_scheduled: float) -> None:
        job.sink(result, phase, t_scheduled, "local")

    return ScheduledSender(job.client, job.session, arrived)


def run_open_loop(job: DriverInput) -> DriverOutput:
    """Each point that fits the budget: a fixed count of seeded Poisson arrivals at the phase's
    rate (:meth:`OpenLoopScenario.arrivals`), then a drain of ``drain_factor`` windows; the
    server is let go idle before the next point."""
    if job.open_loop is None:
        raise ValueError("the open-loop driver needs DriverInput.open_loop (schedule and drain)")
    scenario = job.open_loop
    points = []
    for phase, seed in _fitted(job):
        schedule = scenario.arrivals(phase, job.rules, seed)
        arrivals = len(schedule.offsets)
        plan = f"{arrivals} arrivals over {schedule.window_s:.1f} s{_give_up_plan(phase)}"
        point = job.measure(phase, plan, _this_process)
        t_start = time.time() + _START_DELAY_S
        t_end = t_start + schedule.window_s
        drain_end = t_end + scenario.drain_factor * schedule.window_s
        summary = _sender(job, phase).send(
            [t_start + offset for offset in schedule.offsets], drain_end, give_ups(phase, arrivals, seed)
        )
        job.check_alive()
        note = f"{summary.sent} sent, {summary.completed} returned, {summary.timed_out} timed out"
        if schedule.measured < phase.min_measured:
            note += (
                f"; the {phase.max_s:.0f} s time box held {arrivals} arrivals, {schedule.measured} after "
                f"the warm-up cut, short of the {phase.min_measured} the point needs"
            )
        points.append(point.finish(t_start, t_end, drain_end, note))
        job.wait_idle()
    return DriverOutput(tuple(points))


def run_bursts(job: DriverInput) -> DriverOutput:
    """Each point: bursts of ``users`` requests released together, each after the previous one
    drained, until the point's target requests or its time box."""
    points = []
    for planned in job.phases:
        phase = job.fit(planned)
        if phase is None:
            continue
        plan = f"{phase.target_requests} requests in bursts{_give_up_plan(phase)}"
        point = job.measure(phase, plan, _this_process)
        sender = _sender(job, phase)
        done = 0
        t_start = time.time()
        size = phase.users or 1
        while done < phase.target_requests and time.time() - t_start < phase.max_s:
            burst_seed = point_seed(job.seed, phase.index, job.trial) * 1000 + done
            summary = sender.burst(size, job.request_timeout_s, give_ups(phase, size, burst_seed))
            done += summary.completed + summary.timed_out
            job.check_alive()
            point.live(f"{done}/{phase.target_requests}")
        points.append(point.finish(t_start, time.time(), None, f"{done} requests"))
    return DriverOutput(tuple(points))


def run_soak(job: DriverInput) -> DriverOutput:
    """Each point: seeded Poisson arrivals at its rate for the soak's duration, the server's
    resources sampled every ``sample_every_s`` while they run (and once more after the drain);
    requests still open ``request_timeout_s`` after the window are timeouts."""
    if job.soak is None:
        raise ValueError("the soak driver needs DriverInput.soak (duration and sampling interval)")
    soak = job.soak
    points = []
    for phase, seed in _fitted(job):
        offsets = soak.arrivals(phase, seed)
        sampled = "" if job.sample_resources is None else f", resources every {soak.sample_every_s:g} s"
        plan = f"{len(offsets)} arrivals over {phase.max_s:.0f} s{sampled}{_give_up_plan(phase)}"
        point = job.measure(phase, plan, _this_process)
        t_start = time.time() + _START_DELAY_S
        t_end = t_start + phase.max_s
        drain_end = t_end + job.request_timeout_s
        scheduled = [t_start + offset for offset in offsets]
        give_up = give_ups(phase, len(offsets), seed)
        peak: int | None = None
        if job.sample_resources is None:
            summary = _sender(job, phase).send(scheduled, drain_end, give_up)
        else:
            with job.sample_resources(phase, soak.sample_every_s) as watch:
                summary = _sender(job, phase).send(scheduled, drain_end, give_up)
            peak = watch.peak_gpu_bytes
        job.check_alive()
        note = f"{summary.sent} sent, {summary.completed} returned, {summary.timed_out} timed out"
        if job.sample_resources is None:
            note += "; resources not sampled: gvf did not start this server (--target-url)"
        points.append(point.finish(t_start, t_end, drain_end, note, peak))
        job.wait_idle()
    return DriverOutput(tuple(points))
