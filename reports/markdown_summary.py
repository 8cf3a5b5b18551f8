"""The Markdown summary, the answer first: per run the verdict, the chart that carries it and the
model banner, then the evidence, what MCP costs and each server's footprint, a compact table of
the load points (CSV beside it), Gradio's second opinion, abandoned requests and the soak where
the run has them, the knees, links to the figure files and the rules applied.
"""

from __future__ import annotations

from collections.abc import Sequence

from reports import features
from reports.analysis import RunAnalysis
from reports.figures import FIGURES_DIR, HEADLINE, Figure
from reports.labels import model_line, warnings_for
from reports.tables import (
    ABANDON_COLUMNS,
    BATCH_COLUMNS,
    KNEE_COLUMNS,
    PROFILER_COLUMNS,
    SOAK_COLUMNS,
    SUMMARY_COLUMNS,
    SUMMARY_CSV,
    TRIALS_CSV,
    abandon_cells,
    abandon_rule,
    batch_cells,
    batch_rule,
    knee_cells,
    profiler_cells,
    rules_text,
    soak_cells,
    soak_rule,
    summary_cells,
)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table; a cell's pipes escaped and its line breaks folded."""

    def clean(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _features_markdown(analysis: RunAnalysis) -> list[str]:
    """What MCP costs and the dependency footprint, where the run measured them."""
    lines: list[str] = []
    if analysis.mcp:
        lines += ["", f"### {features.MCP_HEADING}", ""]
        lines += [f"{text}\n" for text in features.mcp_sentences(analysis.mcp)]
        rows = [features.mcp_cells(c) for c in analysis.mcp]
        lines += [markdown_table(features.MCP_COLUMNS, rows), "", f"_Rule: {features.MCP_RULE}_"]
    if analysis.footprint:
        rows = features.footprint_rows(analysis.footprint)
        lines += ["", f"### {features.FOOTPRINT_HEADING}", ""]
        lines += [markdown_table(features.FOOTPRINT_COLUMNS, rows), "", f"_{features.FOOTPRINT_RULE}_"]
    return lines


def run_section_markdown(analysis: RunAnalysis, figures: Sequence[Figure], prefix: str = "") -> str:
    run, rec = analysis.run, analysis.recommendation
    headline = next((f for f in figures if f.name == prefix + HEADLINE), None)
    lines = [f"## Run {run.run_id}", "", "### Which should I deploy?", "", f"**{rec.verdict}**", ""]
    if headline is not None:
        lines += [f"![{headline.caption}]({FIGURES_DIR}/{headline.name}.png)", ""]
    lines += [model_line(run), ""]
    lines += [f"> **{w}**\n" for w in warnings_for(run)]
    if run.partial:
        lines.append(f"> **PARTIAL RUN** — {'; '.join(run.partial_reasons)}\n")
    lines += ["", "### The evidence", "", "_Computed from this run's VALID points only._", ""]
    lines += [f"- **{f.label}:** {f.text}  \n  _Rule: {f.rule}_" for f in rec.findings]
    lines += ["", "Facts from documentation, not measured by this run:", ""]
    lines += [f"- {fact}" for fact in rec.facts]
    lines += _features_markdown(analysis)
    rows = [summary_cells(s) for s in analysis.summaries]
    summary_csv, trials_csv = prefix + SUMMARY_CSV, prefix + TRIALS_CSV
    lines += [
        "",
        "### Load points",
        "",
        f"Each point over its trials: estimate (95% CI). As CSV: [{summary_csv}]({summary_csv}), every "
        f"trial: [{trials_csv}]({trials_csv}).",
        "",
        markdown_table(SUMMARY_COLUMNS, rows),
        "",
    ]
    if analysis.profiler:
        lines += [
            "### Gradio's second opinion",
            "",
            markdown_table(PROFILER_COLUMNS, [profiler_cells(c) for c in analysis.profiler]),
            "",
        ]
    if analysis.abandon:
        rows = [abandon_cells(a) for a in analysis.abandon]
        lines += [
            "### Abandoned requests",
            "",
            f"_{abandon_rule()}_",
            "",
            markdown_table(ABANDON_COLUMNS, rows),
            "",
        ]
    if analysis.soak:
        lines += ["### Soak", ""] + [f"- **{t.line()}**" for t in analysis.soak]
        rows = [soak_cells(t) for t in analysis.soak]
        lines += ["", f"_{soak_rule(analysis.rules)}_", "", markdown_table(SOAK_COLUMNS, rows), ""]
    if analysis.batching:
        rows = [batch_cells(b) for b in analysis.batching]
        lines += ["### Batching", "", f"_{batch_rule()}_", "", markdown_table(BATCH_COLUMNS, rows), ""]
    if analysis.knees:
        lines += ["### Knees", "", markdown_table(KNEE_COLUMNS, [knee_cells(k) for k in analysis.knees]), ""]
    lines += ["### Figures", ""] + [f"- [{f.caption}]({FIGURES_DIR}/{f.name}.png)" for f in figures]
    lines += ["", "### Validity rules applied", ""] + [f"- {r}" for r in rules_text(analysis.rules)]
    return "\n".join(lines)


def render_markdown(
    analyses: Sequence[RunAnalysis],
    run_figures: Sequence[Sequence[Figure]],
    differing: Sequence[str],
    prefixes: Sequence[str] | None = None,
) -> str:
    lines = ["# gvf report — " + ", ".join(a.run.run_id for a in analyses), ""]
    if len(analyses) > 1:
        lines.append(
            f"**These runs differ in {'; '.join(differing)}: they are not put on one axis.**"
            if differing
            else "The runs share backend, device and weights: the comparison figures put them on one axis."
        )
        lines.append("")
    prefixes = prefixes or [""] * len(analyses)
    lines += [run_section_markdown(a, f, p) for a, f, p in zip(analyses, run_figures, prefixes, strict=True)]
    return "\n\n".join(lines) + "\n"
