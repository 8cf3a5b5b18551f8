"""What MCP costs on each server: the ``mcp`` scenario's tool calls against the same server's REST
base64 calls, trial t of one beside trial t of the other (they ran one after the other).

Per server that ran the scenario:

- **added time per call**: MCP − REST p50 at one user, paired by trial
  (:func:`reports.metrics.summaries.compare`), with the mean wait and protocol components'
  differences, which say where it goes: before the function starts (on gradio, the loopback hop
  into its own queue) or after it returns (the answer's way out: on gradio, the result back to
  its loopback client over SSE and the PNG's re-encode on the event loop);
- **throughput ratio** MCP / REST at the scenario's saturating (highest) load;
- **session set-up**, timed once per run on its own as the client was prepared (run.json
  ``client_setup``): the median of its set-ups with a bootstrap interval over them;
- on gradio with its profiler, the **loopback hop** as Gradio's own clock sees it: the median of
  the ledger's wait (from the ``tools/call`` request) less Gradio's queue wait (from the
  loopback's ``/queue/join``), from :mod:`reports.metrics.profiler`.

A load is compared only where both points are VALID in every trial; otherwise it says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reports.metrics.intervals import Interval, bootstrap_interval, quantile_of_rows
from reports.metrics.profiler import ProfilerCheck
from reports.metrics.summaries import THROUGHPUT, PointSummary, compare
from reports.schema import ScenarioName

MCP_CLIENT = "mcp"  # the load generator's MCP client (loadtests.clients)


@dataclass(frozen=True)
class LoadPair:
    """The REST and the MCP point of one server at one load of the scenario."""

    load_point: str
    rest: PointSummary | None
    mcp: PointSummary | None
    why_not: str  # "" where both are VALID and can be compared


@dataclass
class McpCost:
    """MCP against REST on one server."""

    server: str
    rest_client: str
    single: LoadPair | None  # one user
    saturating: LoadPair | None  # the scenario's highest load (None: it has one load only)
    added_p50: Interval | None = None  # MCP − REST p50 at one user, s
    added_wait: Interval | None = None  # MCP − REST mean wait at one user, s
    added_protocol: Interval | None = None  # MCP − REST mean protocol time at one user, s
    throughput_ratio: Interval | None = None  # MCP / REST at the saturating load
    setup: Interval | None = None  # the session set-up, s
    setup_detail: str = ""  # what one set-up is (run.json client_setup's own words)
    loopback_hop_s: float | None = None  # gradio: ledger wait − Gradio's queue wait, median, one user
    notes: list[str] = field(default_factory=list)


def _pair(points: Sequence[PointSummary], load: float) -> LoadPair:
    at = [s for s in points if s.load == load]
    rest = next((s for s in at if s.client != MCP_CLIENT), None)
    mcp = next((s for s in at if s.client == MCP_CLIENT), None)
    why = [
        f"{name} {'did not run it' if s is None else 'INVALID (' + '; '.join(s.reasons) + ')'}"
        for name, s in (("REST", rest), ("MCP", mcp))
        if s is None or not s.valid
    ]
    return LoadPair((rest or mcp or at[0]).load_point, rest, mcp, "; ".join(why))


def setup_interval(setup: Mapping[str, Any]) -> Interval | None:
    """The median session set-up, s, with a bootstrap interval over the set-ups timed."""
    return bootstrap_interval(list(setup.get("setup_s") or []), quantile_of_rows(0.5))


def mcp_costs(
    summaries: Sequence[PointSummary],
    client_setup: Mapping[str, Mapping[str, Any]],
    profiler: Sequence[ProfilerCheck] = (),
) -> list[McpCost]:
    """One :class:`McpCost` per server that ran the ``mcp`` scenario, in first-seen order.
    ``client_setup``: run.json's, keyed by ``server/client``."""
    costs = []
    servers = dict.fromkeys(s.server for s in summaries if s.scenario == ScenarioName.MCP)
    for server in servers:
        points = [s for s in summaries if s.server == server and s.scenario == ScenarioName.MCP]
        loads = sorted({s.load for s in points})
        rest_client = next((s.client for s in points if s.client != MCP_CLIENT), "")
        cost = McpCost(
            server,
            rest_client,
            _pair(points, loads[0]),
            _pair(points, loads[-1]) if len(loads) > 1 else None,
        )
        single = cost.single
        if single is not None and not single.why_not and single.rest and single.mcp:
            cost.added_p50 = compare(single.mcp, single.rest, "p50")
            cost.added_wait = compare(single.mcp, single.rest, "wait")
            cost.added_protocol = compare(single.mcp, single.rest, "protocol")
            cost.loopback_hop_s = next(
                (
                    c.wait_difference_s
                    for c in profiler
                    if c.key == (server, MCP_CLIENT, ScenarioName.MCP, single.load_point)
                ),
                None,
            )
        saturating = cost.saturating
        if saturating is not None and not saturating.why_not and saturating.rest and saturating.mcp:
            cost.throughput_ratio = compare(saturating.mcp, saturating.rest, THROUGHPUT)
        setup = client_setup.get(f"{server}/{MCP_CLIENT}") or {}
        cost.setup = setup_interval(setup)
        cost.setup_detail = str(setup.get("setup") or "")
        costs.append(cost)
    return costs
