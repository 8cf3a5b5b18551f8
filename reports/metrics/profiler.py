"""A second opinion from Gradio itself: the ledger's timings against Gradio's profiler.

With ``GRADIO_PROFILING=1`` Gradio records, per queued event, the time it waited in the queue
(``queue_wait_ms``: enqueued to processing) and the time the function call took
(``fn_call_ms``); the load generator keeps those traces in ``profiling.jsonl``. The gradio
adapter records the same event's id in its ledger row (the table's ``event_id``), so each
measured request is joined to its trace and two spans are set side by side:

- wait: the ledger's t_admit − t_recv (body read to the function starting) against Gradio's
  queue wait;
- function: the ledger's t_send − t_admit (the function's own span) against Gradio's call.

Per gradio point (its trials pooled) the medians of the differences (ledger − Gradio) are
reported; where either exceeds ``max_profiler_disagreement_s`` the point says so in a note. An MCP
tool call is the exception for the wait: its ledger row starts at the ``tools/call`` request,
Gradio's queue wait at the loopback ``/queue/join`` Gradio makes to run the tool, so their
difference is that hop (reports.metrics.mcp), not a disagreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.metrics.points import PointMetrics, measured_rows
from reports.metrics.rules import ValidityRules
from reports.schema import MCP_ENDPOINT_PREFIX


@dataclass(frozen=True)
class ProfilerCheck:
    """How far one gradio point's ledger and Gradio's profiler disagree."""

    server: str
    client: str
    scenario: str
    load_point: str
    n_requests: int  # successful measured requests carrying an event id
    n_joined: int  # of those, joined to a trace
    wait_difference_s: float | None  # median of ledger wait − Gradio queue wait
    call_difference_s: float | None  # median of ledger function span − Gradio function call
    note: str  # "" where they agree within the rule

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.server, self.client, self.scenario, self.load_point)


def joined_traces(rows: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """The rows joined to their traces by event id: each row's ledger wait and function span
    beside Gradio's queue wait and function call, seconds."""
    with_event = rows[(rows["event_id"] != "") & rows["ok"].astype(bool)]
    needed = {"event_id", "queue_wait_ms", "fn_call_ms"}
    if with_event.empty or not needed <= set(traces.columns):
        return pd.DataFrame(columns=["ledger_wait", "gradio_wait", "ledger_call", "gradio_call"])
    own = traces.drop_duplicates("event_id", keep="last").set_index("event_id")
    joined = with_event.join(own[["queue_wait_ms", "fn_call_ms"]], on="event_id", how="inner")
    return pd.DataFrame(
        {
            "ledger_wait": joined["t_admit"] - joined["t_recv"],
            "gradio_wait": pd.to_numeric(joined["queue_wait_ms"], errors="coerce") / 1e3,
            "ledger_call": joined["t_send"] - joined["t_admit"],
            "gradio_call": pd.to_numeric(joined["fn_call_ms"], errors="coerce") / 1e3,
        }
    ).dropna()


def profiler_checks(
    table: pd.DataFrame,
    results: Sequence[PointMetrics],
    traces: pd.DataFrame | None,
    rules: ValidityRules,
) -> list[ProfilerCheck]:
    """One check per gradio point of the run; none where the run collected no traces."""
    if traces is None:
        return []
    grouped: dict[tuple[str, str, str, str], list[PointMetrics]] = {}
    for m in results:
        if m.server == "gradio":
            grouped.setdefault(m.key, []).append(m)
    checks = []
    for key, trials in grouped.items():
        rows = pd.concat([measured_rows(table, m) for m in trials])
        n_requests = int(((rows["event_id"] != "") & rows["ok"].astype(bool)).sum())
        joined = joined_traces(rows, traces)
        wait = _median(joined["ledger_wait"] - joined["gradio_wait"])
        call = _median(joined["ledger_call"] - joined["gradio_call"])
        # judged on answered calls: one Gradio's MCP loopback dropped may be ledgered as a plain call
        answered = rows.loc[rows["ok"].astype(bool), "endpoint"].astype(str)
        mcp = bool(len(answered)) and answered.str.startswith(MCP_ENDPOINT_PREFIX).all()
        note = _note(None if mcp else wait, call, joined, rules)
        if mcp and wait is not None:
            difference = f"{wait * 1e3:+.1f}".replace("-", "−")
            hop = (
                f"MCP tool calls: the wait difference ({difference} ms) is Gradio's loopback hop into "
                "its own queue (the ledger's wait starts at the tools/call request), not a disagreement"
            )
            note = f"{note}; {hop}" if note else hop
        checks.append(ProfilerCheck(*key, n_requests, len(joined), wait, call, note))
    return checks


def _median(values: pd.Series) -> float | None:
    return float(np.median(values)) if len(values) else None


def _note(wait: float | None, call: float | None, joined: pd.DataFrame, rules: ValidityRules) -> str:
    if joined.empty:
        return "Gradio's profiler: no measured request joined to a trace (no event ids, or no traces)"
    limit = rules.max_profiler_disagreement_s
    off = [
        f"{what} by {value * 1e3:+.1f} ms".replace("-", "−")
        for what, value in (
            ("the wait (t_admit − t_recv vs its queue wait)", wait),
            ("the function span", call),
        )
        if value is not None and abs(value) > limit
    ]
    if not off:
        return ""
    return (
        f"Gradio's profiler disagrees with the ledger at the median over {len(joined)} requests: "
        f"{' and '.join(off)} (ledger − Gradio; more than {limit * 1e3:g} ms)"
    )
