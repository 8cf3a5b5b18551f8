"""What the project adds around Gradio's queue: abandoned calls in the ledger, leftovers bounded.

What Gradio 6.31 does when a caller goes away (``routes.py`` ``queue_data_helper``, ``queueing.py``):
the SSE stream of ``/call/<name>/<event_id>`` (or ``/queue/data``) notices the closed
connection at once (Starlette listens for ``http.disconnect`` while streaming) and calls
``Queue.clean_events``: an event still waiting in the queue is removed and never runs; one
already taken off the queue is marked ``alive = False`` and either skipped (not started yet)
or run to its end, its answer sent to nobody. ``POST /cancel`` removes a queued event the
same way (``Queue.remove_from_queue``). A caller that has not opened its SSE stream yet
cannot be noticed: its call runs. Gradio offers no hook for any of this, so
:class:`QueueWatch` wraps those three methods (``clean_events``, ``remove_from_queue``,
``process_events``) on the queue instance to close a ledger row (status 499, stage
``queued``) for each event that will never run, and lets the queued function ask whether its
caller still listens just before the GPU stage. They are private methods of the pinned
Gradio: the abandonment tests (every abandoned call accounted for) guard them.

Batches (``@app.api(batch=True)``): Gradio hands the function the first event's ``gr.Request``
only and fails every event of a batch together when the function raises. The watch remembers
each dispatched batch's events (those alive at dispatch, in input order), so the function can
learn each input's request id and caller (:meth:`QueueWatch.admitted_batch`), and it wraps a
fourth method, ``send_message``, so that an input the function marks failed
(:meth:`QueueWatch.fail`) reaches its caller as the ``error`` event an unbatched call would have
raised, while its batch-mates complete.

Leftovers: each call opens a session whose entries in ``pending_event_ids_session`` (an empty
set once delivered, never removed) and ``pending_messages_per_session`` (a queue, up to 2,000
kept, holding stale queue-position messages after a cancel) outlive it, and a result nobody
came for stays in its session's message queue. :meth:`QueueWatch.sweep` drops sessions with
nothing left to deliver, those whose caller left, and undelivered results older than the
retention (``--keep-files-s``). It runs on the event loop between requests and never awaits,
so no queue coroutine sees a half-done change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from servers.core.ledger import CLIENT_GONE, Ledger, Stage, new_request_id
from servers.core.segmenter import always_wanted
from servers.http_common import REQUEST_ID_HEADER, ArrivalStamps

SWEEP_EVERY_S = 1.0


@dataclass(frozen=True)
class Caller:
    """One input of a batched call: whose it is, and whether its caller still listens."""

    request_id: str
    still_wanted: Callable[[], bool]
    event_id: str | None = None  # None outside the queue (no event to report a failure to)


class QueueWatch:
    """Made before launch (its sweep runs in a middleware); :meth:`attach` it to the queue that
    launch creates (``app.get_blocks()._queue``). Until then it does nothing."""

    def __init__(self, ledger: Ledger, stamps: ArrivalStamps, keep_results_s: float) -> None:
        self.queue: Any = None
        self.ledger = ledger
        self.stamps = stamps
        self.keep_results_s = keep_results_s
        self._dispatched: dict[str, Any] = {}  # taken off the queue, process_events not done
        self._started: set[str] = set()  # of those, the ones whose function has begun
        self._left: set[str] = set()  # sessions whose caller went away
        self._undelivered_since: dict[str, float] = {}
        # id() of a batch's first request (what its function is handed) -> the batch's events
        self._batches: dict[int, list[Any]] = {}
        self._failed: dict[str, Exception] = {}  # event id -> the error its caller gets instead

    def attach(self, queue: Any) -> None:
        from gradio.server_messages import ProcessCompletedMessage
        from gradio.utils import error_payload

        clean_events = queue.clean_events
        remove_from_queue = queue.remove_from_queue
        process_events = queue.process_events
        send_message = queue.send_message

        async def recording_clean_events(
            *, session_hash: str | None = None, event_id: str | None = None
        ) -> None:
            if session_hash is not None:
                self._left.add(session_hash)
            waiting = self._waiting(lambda event: event.session_hash == session_hash or event._id == event_id)
            await clean_events(session_hash=session_hash, event_id=event_id)
            self._record_removed(waiting)

        async def recording_remove_from_queue(event_id: str) -> None:
            waiting = self._waiting(lambda event: event._id == event_id)
            await remove_from_queue(event_id)
            self._record_removed(waiting)

        async def recording_process_events(events: list[Any], batch: bool, *args: Any) -> None:
            # Gradio skips an event whose caller left after it was taken off the queue; the
            # check runs before process_events first awaits, so this list is exactly those
            dead = [event for event in events if not event.alive]
            # and hands a batched function the inputs of the others (with data), in this order
            inputs = [event for event in events if event.alive and event.data]
            if batch and inputs:
                self._batches[id(inputs[0].request)] = inputs
            self._dispatched.update((event._id, event) for event in events)
            try:
                await process_events(events, batch, *args)
            finally:
                for event in events:
                    self._dispatched.pop(event._id, None)
                    self._started.discard(event._id)
                    self._failed.pop(event._id, None)
                if batch and inputs:
                    self._batches.pop(id(inputs[0].request), None)
                self._record_gone(dead)

        def failing_send_message(event: Any, message: Any) -> None:
            error = self._failed.pop(event._id, None)
            if error is not None and isinstance(message, ProcessCompletedMessage) and message.success:
                # what Gradio sends when an unbatched function raises
                content = error_payload(error, queue.server_app.get_blocks().show_error)
                message = ProcessCompletedMessage(
                    output=content, title=content.get("title", "Error"), success=False
                )
            send_message(event, message)

        queue.clean_events = recording_clean_events
        queue.remove_from_queue = recording_remove_from_queue
        queue.process_events = recording_process_events
        queue.send_message = failing_send_message
        self.queue = queue

    def waiting(self) -> int:
        """Accepted, not yet admitted: in the queue, or taken off it with the function not begun."""
        if self.queue is None:
            return 0
        return len(self.queue) + sum(
            1 for event_id in list(self._dispatched) if event_id not in self._started
        )

    def admitted(self) -> Callable[[], bool]:
        """Called first thing in the queued function: marks its event begun and returns whether
        its caller still listens (asked again before the GPU stage and at the end)."""
        from gradio.context import LocalContext

        event_id = LocalContext.event_id.get(None)
        event = self._dispatched.get(event_id) if event_id is not None else None
        if event is None:
            return always_wanted
        self._started.add(event_id)
        return lambda: bool(event.alive)

    def admitted_batch(self, request: Any, inputs: int) -> list[Caller]:
        """Called first thing in a batched function with the ``gr.Request`` Gradio hands it (the
        first input's): marks the batch's events begun and returns one :class:`Caller` per input."""
        events = self._batches.get(id(getattr(request, "request", None)), [])
        if len(events) != inputs:  # not dispatched by the watched queue: no events to follow
            first = request.headers.get(REQUEST_ID_HEADER) or new_request_id()
            return [
                Caller(first if index == 0 else new_request_id(), always_wanted) for index in range(inputs)
            ]
        self._started.update(event._id for event in events)
        return [
            Caller(
                event.request.headers.get(REQUEST_ID_HEADER) or event._id,
                lambda event=event: bool(event.alive),
                event._id,
            )
            for event in events
        ]

    def fail(self, caller: Caller, error: Exception) -> None:
        """``caller``'s input failed on its own: its caller gets ``error`` as an SSE ``error`` event
        when Gradio completes the batch."""
        if caller.event_id is not None:
            self._failed[caller.event_id] = error

    def _waiting(self, matches: Callable[[Any], bool]) -> list[Any]:
        queues = self.queue.event_queue_per_concurrency_id.values()
        return [event for event_queue in queues for event in event_queue.queue if matches(event)]

    def _record_removed(self, candidates: list[Any]) -> None:
        # what is no longer queued and was not dispatched meanwhile was removed: it never runs
        still_queued = {id(event) for event in self._waiting(lambda event: True)}
        self._record_gone(
            [
                event
                for event in candidates
                if id(event) not in still_queued and event._id not in self._dispatched
            ]
        )

    def _record_gone(self, events: list[Any]) -> None:
        """A 499 row for each event that will never run: stage ``queued``, no GPU time."""
        for event in events:
            request_id = event.request.headers.get(REQUEST_ID_HEADER) or event._id
            row = self.ledger.open(request_id, event.fn.api_name or "", self.stamps.pop(request_id))
            row.stage = Stage.QUEUED
            self.ledger.close(row, CLIENT_GONE)

    def sweep(self) -> None:
        """Drop what no caller will read (see the module docstring)."""
        queue = self.queue
        if queue is None:
            return
        now = time.monotonic()
        # a cancelled call can leave either entry without the other
        sessions = set(queue.pending_event_ids_session) | set(queue.pending_messages_per_session)
        for session_hash in sessions:
            event_ids = queue.pending_event_ids_session.get(session_hash, ())
            finished = all(event_id not in queue.event_ids_to_events for event_id in event_ids)
            drop = not event_ids  # delivered or cancelled: what messages remain are stale
            if not drop and finished:
                since = self._undelivered_since.setdefault(session_hash, now)
                drop = session_hash in self._left or now - since > self.keep_results_s
            if drop:
                queue.pending_event_ids_session.pop(session_hash, None)
                queue.pending_messages_per_session.pop(session_hash, None)
        for gone in set(self._undelivered_since) - sessions:
            del self._undelivered_since[gone]
        self._left &= set(queue.pending_event_ids_session) | set(queue.pending_messages_per_session)

    def held(self) -> dict[str, int]:
        if self.queue is None:
            return {}
        return {
            "queue_sessions": len(self.queue.pending_event_ids_session),
            "message_sessions": len(self.queue.pending_messages_per_session),
        }


class SweepMiddleware:
    """Runs ``sweep`` on the event loop after a request completes, at most every ``every_s``."""

    def __init__(self, app: ASGIApp, sweep: Callable[[], None], every_s: float = SWEEP_EVERY_S) -> None:
        self.app = app
        self.sweep = sweep
        self.every_s = every_s
        self._last = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            now = time.monotonic()
            if now - self._last >= self.every_s:
                self._last = now
                self.sweep()
