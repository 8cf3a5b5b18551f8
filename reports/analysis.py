"""One run analysed: its rules, per-point metrics and verdicts, knees and deploy recommendation.

``analyse`` is the one place a loaded run becomes numbers: the report builder and the
notebook call it rather than chaining the ``reports.metrics`` functions themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from reports.load import LoadedRun
from reports.metrics.deploy import Recommendation, recommend
from reports.metrics.points import PointMetrics, point_metrics
from reports.metrics.rules import ValidityRules, rules_from_mapping
from reports.metrics.sweeps import Knee, knees


@dataclass
class RunAnalysis:
    """One run with everything computed from it."""

    run: LoadedRun
    rules: ValidityRules
    results: list[PointMetrics]
    knees: list[Knee]
    recommendation: Recommendation

    @property
    def device(self) -> str:
        return str(self.run.model.get("device") or "")


def analyse(run: LoadedRun) -> RunAnalysis:
    """The run judged by the rules it recorded (the defaults where it recorded none)."""
    rules = rules_from_mapping(run.meta.get("validity"))
    device = str(run.model.get("device") or "")
    results = point_metrics(run.table, run.points, rules, run_id=run.run_id, device=device)
    return RunAnalysis(run, rules, results, knees(results, rules), recommend(results, device))
