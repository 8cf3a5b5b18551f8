"""What gradio.Server sells beyond its queue, as the run measured it, in words and table cells that
the HTML report and the Markdown summary both show: "What MCP costs" (:mod:`reports.metrics.mcp`)
and "Dependency footprint" (:mod:`reports.metrics.footprint`).
"""

from __future__ import annotations

from collections.abc import Sequence

from reports.metrics.deploy import difference_text, ms, ratio_text
from reports.metrics.footprint import ServerFootprint, difference
from reports.metrics.intervals import Interval
from reports.metrics.mcp import McpCost
from reports.tables import interval_cell, num_cell

MCP_HEADING = "What MCP costs"
MCP_RULE = (
    "The `mcp` scenario: each load run by the server's REST base64 client and by the MCP client "
    "(`tools/call remove_background`, one HTTP request) in turn, trial t of one beside trial t of the "
    "other; compared only where both points are VALID in every trial. Added time: MCP − REST p50 at one "
    "user, with the mean wait and protocol components' differences; throughput: MCP / REST images per "
    "second at the scenario's saturating load. The MCP session set-up (initialize + "
    "notifications/initialized) is outside every call's time, timed on its own as the run prepared its "
    "client: median with a bootstrap interval over its set-ups."
)
MCP_COLUMNS: tuple[str, ...] = (
    "server",
    "REST client",
    "MCP − REST p50 at 1 user, ms (95% CI)",
    "of which wait, ms (95% CI)",
    "of which protocol, ms (95% CI)",
    "MCP / REST img/s at saturation (95% CI)",
    "session set-up, ms (95% CI)",
    "not compared",
)
GRADIO_WHERE = (
    "Where the cost goes on gradio: Gradio runs a queued tool by calling itself back over HTTP "
    "(`gradio_client` → `/queue/join`, then the result over SSE). The hop in counts as wait here (the "
    "ledger's wait starts at the tools/call request){hop}. On the way out Gradio reopens the result file "
    "and re-encodes the PNG with PIL's defaults (zlib level 6) on its event loop before the MCP answer "
    'leaves: that counts as protocol, grows with the image (README "MCP", `scripts/bench_mcp.py`: '
    "~1.3 s for a 1080p cut-out on 2 CPU cores), and while it runs the event loop serves nobody else. "
    "FastAPI's tool runs in-process, no loopback, through the `mcp` SDK's dispatch: its cost is the "
    "JSON-RPC handling and SSE framing around the same admitted path as its REST endpoints, work that "
    "at large images competes with the other requests for the event loop."
)


def _ms_interval(interval: Interval | None) -> str:
    return interval_cell(interval, 1e3, ".1f")


def _why_not(cost: McpCost) -> str:
    reasons = [
        f"{pair.load_point}: {pair.why_not}"
        for pair in (cost.single, cost.saturating)
        if pair is not None and pair.why_not
    ]
    if cost.saturating is None:
        reasons.append("no saturating load in this run")
    return "; ".join(reasons) or "—"


def mcp_cells(cost: McpCost) -> list[str]:
    """A server's row of the MCP table, in ``MCP_COLUMNS`` order."""
    return [
        cost.server,
        cost.rest_client,
        _ms_interval(cost.added_p50),
        _ms_interval(cost.added_wait),
        _ms_interval(cost.added_protocol),
        interval_cell(cost.throughput_ratio),
        _ms_interval(cost.setup),
        _why_not(cost),
    ]


def _added_phrase(interval: Interval | None, rest_client: str) -> str:
    if interval is None:
        return f"a tools/call was not compared with {rest_client} (see the table)"
    numbers = f"MCP − REST p50 {difference_text(interval)}, {interval.method}"
    if not interval.excludes(0.0):
        return f"a tools/call takes no measurably different time from {rest_client} ({numbers})"
    verb = "adds" if interval.estimate > 0 else "saves"
    return f"a tools/call {verb} {ms(abs(interval.estimate))} per call over {rest_client} ({numbers})"


def _ratio_phrase(interval: Interval | None) -> str:
    if interval is None:
        return "throughput was not compared (see the table)"
    numbers = f"MCP / REST {ratio_text(interval)}, {interval.method}"
    if not interval.excludes(1.0):
        return f"MCP's throughput is not measurably different from REST's ({numbers})"
    return f"MCP serves {interval.estimate:.2f}× REST's images per second ({numbers})"


def mcp_sentences(costs: Sequence[McpCost]) -> list[str]:
    """One sentence per server, then where the cost goes on gradio (where gradio ran it)."""
    sentences = []
    for cost in costs:
        single = cost.single.load_point if cost.single else "one user"
        parts = [f"{cost.server}: at {single} {_added_phrase(cost.added_p50, cost.rest_client)}"]
        if cost.saturating is not None:
            parts.append(f"at {cost.saturating.load_point} {_ratio_phrase(cost.throughput_ratio)}")
        if cost.setup is not None:
            setup = cost.setup
            parts.append(
                f"the session set-up ({cost.setup_detail or 'initialize + notifications/initialized'}) "
                f"takes {ms(setup.estimate)} once per session (median of {setup.n} set-ups, 95% CI "
                f"{setup.low * 1e3:.1f} to {setup.high * 1e3:.1f} ms, bootstrap)"
            )
        sentences.append("; ".join(parts) + ".")
    gradio = next((c for c in costs if c.server == "gradio"), None)
    if gradio is not None:
        hop = (
            ""
            if gradio.loopback_hop_s is None
            else f"; Gradio's own profiler puts the hop at {ms(gradio.loopback_hop_s)} at one user, "
            "the ledger's wait less its queue wait"
        )
        sentences.append(GRADIO_WHERE.format(hop=hop))
    return sentences


FOOTPRINT_HEADING = "Dependency footprint"
FOOTPRINT_RULE = (
    "As this run started each server (`--model` as above): process start to the first /healthz 200 "
    "(the server's own start-up warm-up calls included), resident memory of the server process and its "
    "children idle right after start-up, after one warm-up call through each of its clients, and at the "
    "end of the run. One start per server, so no interval; packages, disk size, import time and the "
    'median of several starts from a fresh venv: `python scripts/footprint.py` (README "What the '
    'dependency costs").'
)
FOOTPRINT_COLUMNS: tuple[str, ...] = (
    "server",
    "start → healthy, s",
    "idle RSS, MB",
    "RSS after warm-up, MB",
    "RSS at the end, MB",
    "requests served by then",
)


def _footprint_cells(f: ServerFootprint, sign: str = "") -> list[str]:
    def mb(value: int | None) -> str:
        return num_cell(None if value is None else value / 1e6, f"{sign}.0f")

    return [
        f.server,
        num_cell(f.startup_s, f"{sign}.2f"),
        mb(f.rss_idle_bytes),
        mb(f.rss_warm_bytes),
        mb(f.rss_end_bytes),
        num_cell(None if sign else f.requests_served, "d"),  # a difference of counts says nothing
    ]


def footprint_rows(found: Sequence[ServerFootprint]) -> list[list[str]]:
    """One row per server, then gradio − fastapi where the run started both."""
    rows = [_footprint_cells(f) for f in found]
    by_server = {f.server: f for f in found}
    if "gradio" in by_server and "fastapi" in by_server:
        rows.append(_footprint_cells(difference(by_server["gradio"], by_server["fastapi"]), "+"))
    return rows
