"""One run analysed: its rules, per-trial metrics, per-point summaries, knees, Gradio's second
opinion, the deploy recommendation, what MCP costs, each server's footprint, and where the run
has them the abandon scenario's goodput, the soak's resource trends and how batched servers
batched.

``analyse`` is the one place a loaded run becomes numbers: the report builder and the
notebook call it rather than chaining the ``reports.metrics`` functions themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from reports.load import LoadedRun
from reports.metrics.abandon import AbandonSummary, abandon_summaries
from reports.metrics.batching import BatchPoint, batch_points
from reports.metrics.deploy import Recommendation, recommend
from reports.metrics.footprint import ServerFootprint, footprints
from reports.metrics.mcp import McpCost, mcp_costs
from reports.metrics.points import PointMetrics, point_metrics
from reports.metrics.profiler import ProfilerCheck, profiler_checks
from reports.metrics.rules import ValidityRules, rules_from_mapping
from reports.metrics.soak import ResourceTrend, resource_trends
from reports.metrics.summaries import PointSummary, summarise
from reports.metrics.sweeps import Knee, knees


@dataclass
class RunAnalysis:
    """One run with everything computed from it."""

    run: LoadedRun
    rules: ValidityRules
    results: list[PointMetrics]  # one per trial of each point
    summaries: list[PointSummary]  # one per point, over its trials
    knees: list[Knee]
    recommendation: Recommendation
    profiler: list[ProfilerCheck]  # gradio points: the ledger against Gradio's own profiler
    mcp: list[McpCost]  # per server that ran the `mcp` scenario
    footprint: list[ServerFootprint]  # per server the run started
    abandon: list[AbandonSummary]  # the abandon scenario's points: goodput and wasted GPU time
    soak: list[ResourceTrend]  # the soak's points: memory slope and what the server held
    batching: list[BatchPoint]  # where a server batched: its GPU calls by batch size per point

    @property
    def device(self) -> str:
        return str(self.run.model.get("device") or "")


def analyse(run: LoadedRun) -> RunAnalysis:
    """The run judged by the rules it recorded (the defaults where it recorded none)."""
    rules = rules_from_mapping(run.meta.get("validity"))
    device = str(run.model.get("device") or "")
    results = point_metrics(run.table, run.points, rules, run_id=run.run_id, device=device, ledger=run.ledger)
    summaries = summarise(run.table, results, rules, run.repeat)
    profiler = profiler_checks(run.table, results, run.traces, rules)
    by_key = {s.key: s for s in summaries}
    for check in profiler:
        if check.note:
            by_key[check.key].notes.append(check.note)
    return RunAnalysis(
        run,
        rules,
        results,
        summaries,
        knees(summaries, rules),
        recommend(summaries, rules, device, run.lock_scope("fastapi")),
        profiler,
        mcp_costs(summaries, run.meta.get("client_setup") or {}, profiler),
        footprints(run.meta),
        abandon_summaries(run.table, summaries, run.points),
        resource_trends(run.resources, rules, run.run_id),
        batch_points(run.table, summaries),
    )
