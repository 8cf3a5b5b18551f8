"""Gradio's own profiler, collected per load point: a second opinion on the ledger.

A gradio server started with ``GRADIO_PROFILING=1`` keeps one trace per queued event (its
queue wait, preprocess, function call and postprocess, in ms; uploads get traces of their own)
and serves them at ``/gradio_api/profiling/traces`` (``clear`` empties them; docs/design.md
§4). The traces are pulled at each point's end and again at the next point's start (requests
that finish after their point ended: a closed loop's last ones), and each is appended once to
``profiling.jsonl`` with Gradio's raw fields and the ``server``, ``client``, ``scenario``,
``load_point`` and ``trial`` of the point whose window had opened when Gradio queued the event
(trace ``timestamp`` − ``queue_wait_ms``), as the closed-loop driver assigns rows by their send
time; at a boundary between chained points (a spike's phases follow one another under load) a
request sent just before it can be queued just after. The ledger rows carry the same
``event_id``: the reports join the two exactly. The collector is cleared at a point's start only
when the server holds no request, so no trace is lost between a pull and a clear.
"""

from __future__ import annotations

import bisect
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

from loadtests.recorder import Recorder
from loadtests.serverproc import get_json

PROFILING_ENV = {"GRADIO_PROFILING": "1"}  # read by gradio at import, in the server's process
_TRACES = "/gradio_api/profiling/traces"
_CLEAR = "/gradio_api/profiling/clear"


class ProfilerTraces:
    """The profiler of one gradio server, pulled point by point into the run's profiling file."""

    def __init__(self, url: str, recorder: Recorder) -> None:
        self.url = url
        self.recorder = recorder
        self._starts: list[float] = []  # when each point since the last clear started...
        self._tags: list[dict[str, Any]] = []  # ...and what its traces are tagged with
        self._saved: set[str] = set()  # event ids pulled since the last clear
        self._pending: list[dict[str, Any]] = []  # pulled, waiting for their point's true start

    def start_point(self, tags: Mapping[str, Any], server_idle: bool) -> None:
        """Pull the late traces of the points before; if the server holds no request, save them
        and empty the collector; tag what is queued from now on with ``tags``."""
        late = self._pull()
        if server_idle:
            self._save([*self._pending, *late])
            self._clear()
            self._starts, self._tags = [], []
        else:  # a chained point: some may be its own, sent before it was set up
            self._pending += late
        self._starts.append(time.time())  # until end_point gives the window's own start
        self._tags.append(dict(tags))

    def drain(self, server_idle: bool) -> None:
        """Inside a point (a soak's samples): where the server holds no request, save the traces
        so far and empty the collector. Gradio keeps up to 100,000 traces in the server's memory,
        which a soak would otherwise count as the server's own growth; a trace is added when its
        event completes, so one still to come cannot be lost between the pull and the clear."""
        if not server_idle or not self._tags:
            return
        self._save([*self._pending, *self._pull()])
        self._clear()
        self._starts, self._tags = self._starts[-1:], self._tags[-1:]

    def _clear(self) -> None:
        request = urllib.request.Request(self.url + _CLEAR, method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        self._saved.clear()
        self._pending = []

    def end_point(self, t_start: float | None = None) -> None:
        """Save the traces so far; ``t_start``: where the point's window opened (a closed loop's
        point opens a moment before it is set up), so every trace goes to the point it was sent in."""
        if t_start is not None and self._starts:
            self._starts[-1] = t_start
        self._save([*self._pending, *self._pull()])
        self._pending = []

    def _pull(self) -> list[dict[str, Any]]:
        if not self._tags:
            return []  # no point measured yet: nothing of the run's to keep
        traces = get_json(self.url + _TRACES, timeout_s=30.0)
        fresh = [trace for trace in traces if str(trace.get("event_id")) not in self._saved]
        self._saved.update(str(trace.get("event_id")) for trace in fresh)
        return fresh

    def _save(self, traces: list[dict[str, Any]]) -> None:
        self.recorder.save_profiling([{**trace, **self._point_of(trace)} for trace in traces])

    def _point_of(self, trace: Mapping[str, Any]) -> dict[str, Any]:
        queued = float(trace.get("timestamp") or 0.0) - float(trace.get("queue_wait_ms") or 0.0) / 1000
        return self._tags[max(bisect.bisect_right(self._starts, queued) - 1, 0)]
