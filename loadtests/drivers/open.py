"""The open-loop and burst drivers: each request leaves at its scheduled time, whatever the
server does.

Closed-loop users wait for a response before sending again, so an overloaded server slows
its own offered load (coordinated omission). Here every request has its own thread, started
a little ahead of its scheduled time and sleeping until it, so a slow response never delays
a later send; latency then counts from ``t_scheduled`` and the send lag (``t_sent −
t_scheduled``) is recorded to prove the schedule was kept.

Requests still open when the drain ends are recorded as timeouts with ``t_done`` = drain
end (docs/design.md §5), never dropped. Bursts (the collisions scenario) are the same
mechanism with K identical scheduled times. Runs on the plain session, in or outside a
gevent process.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from loadtests.clients import CallResult, Client
from loadtests.drivers.base import DriverInput, DriverOutput
from loadtests.scenarios import Phase, point_seed
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

    def burst(self, size: int, timeout_s: float) -> SendSummary:
        """``size`` requests released at the same instant; returns once all have drained."""
        t_release = time.time() + LEAD_S + 0.001 * size  # slack to start every thread
        return self.send([t_release] * size, t_release + timeout_s)

    def send(self, scheduled: Sequence[float], drain_end: float) -> SendSummary:
        """Fire a request at each ``scheduled`` wall-clock time (ascending); wait until all
        returned or ``drain_end`` passed; record what is still open as timeouts."""
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
            result = self.client.call(self.session, request_id, drain_end)
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
    for planned in job.phases:
        phase = job.fit(planned)
        if phase is None:
            continue
        schedule = scenario.arrivals(phase, job.rules, point_seed(job.seed, phase.index, job.trial))
        arrivals = len(schedule.offsets)
        point = job.measure(phase, f"{arrivals} arrivals over {schedule.window_s:.1f} s", _this_process)
        t_start = time.time() + _START_DELAY_S
        t_end = t_start + schedule.window_s
        drain_end = t_end + scenario.drain_factor * schedule.window_s
        summary = _sender(job, phase).send([t_start + offset for offset in schedule.offsets], drain_end)
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
        point = job.measure(phase, f"{phase.target_requests} requests in bursts", _this_process)
        sender = _sender(job, phase)
        done = 0
        t_start = time.time()
        while done < phase.target_requests and time.time() - t_start < phase.max_s:
            summary = sender.burst(phase.users or 1, job.request_timeout_s)
            done += summary.completed + summary.timed_out
            job.check_alive()
            point.live(f"{done}/{phase.target_requests}")
        points.append(point.finish(t_start, time.time(), None, f"{done} requests"))
    return DriverOutput(tuple(points))
