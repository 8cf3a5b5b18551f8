"""The open-loop driver: each request leaves at its scheduled time, whatever the server does.

Closed-loop users wait for a response before sending again, so an overloaded server slows
its own offered load (coordinated omission). Here every request has its own thread, started
a little ahead of its scheduled time and sleeping until it, so a slow response never delays
a later send; latency then counts from ``t_scheduled`` and the send lag (``t_sent −
t_scheduled``) is recorded to prove the schedule was kept.

Requests still open when the drain ends are recorded as timeouts with ``t_done`` = drain
end (docs/design.md §5), never dropped. Bursts (the collisions scenario) are the same mechanism with
K identical scheduled times. Runs on the plain session, in or outside a gevent process.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from loadtests.clients import CallResult, Client
from loadtests.session import Session

ResultSink = Callable[[CallResult, float], None]  # (result, t_scheduled)

# A request's thread starts this long before its scheduled time: thread start-up (and the
# GIL) then cost slack, not send lag.
LEAD_S = 0.02
# How long after the drain end the driver waits for threads to report their timeout.
_REPORT_GRACE_S = 2.0
TIMEOUT_ERROR = "timeout: still open at drain end"


@dataclass
class DriverSummary:
    scheduled: int
    sent: int
    completed: int  # returned before the drain end (ok or not)
    timed_out: int  # still open at the drain end
    t_drain_end: float


class OpenLoopDriver:
    def __init__(self, client: Client, session: Session, sink: ResultSink) -> None:
        self.client = client
        self.session = session
        self.sink = sink
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop sending (Ctrl-C, a dead server); requests in flight still report."""
        self._stop.set()

    def run(self, scheduled: Sequence[float], drain_end: float) -> DriverSummary:
        """Fire a request at each ``scheduled`` wall-clock time (ascending); wait until all
        returned or ``drain_end`` passed; record what is still open as timeouts."""
        open_requests: dict[int, tuple[str, float]] = {}  # index -> (request id, t_scheduled)
        all_done = threading.Event()
        counts = {"sent": 0, "completed": 0, "timed_out": 0}
        firing_done = False

        def fire(index: int, request_id: str, t_scheduled: float) -> None:
            delay = t_scheduled - time.time()
            if delay > 0:
                time.sleep(delay)
            result = self.client.call(self.session, request_id, drain_end)
            with self._lock:
                if open_requests.pop(index, None) is None:
                    return  # already recorded as a timeout by the driver
                if not result.ok and result.t_done >= drain_end:
                    result = replace(result, t_done=drain_end, status=0, error=TIMEOUT_ERROR)
                    counts["timed_out"] += 1
                else:
                    counts["completed"] += 1
                if firing_done and not open_requests:
                    all_done.set()
            self.sink(result, t_scheduled)

        for index, t_scheduled in enumerate(scheduled):
            if self._stop.wait(max(t_scheduled - LEAD_S - time.time(), 0)):
                break
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
            stuck = sorted(open_requests.items())
            open_requests.clear()
            counts["timed_out"] += len(stuck)
        for _index, (request_id, t_scheduled) in stuck:
            # never returned, not even at its deadline: the driver records it
            result = CallResult(request_id, t_scheduled, drain_end, 0, False, TIMEOUT_ERROR, 0)
            self.sink(result, t_scheduled)
        return DriverSummary(
            len(scheduled), counts["sent"], counts["completed"], counts["timed_out"], drain_end
        )

    def run_burst(self, size: int, timeout_s: float) -> DriverSummary:
        """``size`` requests released at the same instant; returns once all have drained."""
        t_release = time.time() + LEAD_S + 0.001 * size  # slack to start every thread
        return self.run([t_release] * size, t_release + timeout_s)
