"""The Markdown summary: the verdicts, the deploy section, a short table of the load points,
the knees, links to the figure files and the rules applied, per run or comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

from reports.analysis import RunAnalysis
from reports.figures import FIGURES_DIR, Figure
from reports.labels import model_line, warnings_for
from reports.tables import KNEE_COLUMNS, SUMMARY_POINT_COLUMNS, knee_cells, rules_text, summary_point_cells


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def clean(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def run_section_markdown(analysis: RunAnalysis, figures: Sequence[Figure]) -> str:
    run, rec = analysis.run, analysis.recommendation
    lines = [f"## Run {run.run_id}", "", model_line(run), ""]
    lines += [f"> **{w}**\n" for w in warnings_for(run)]
    if run.partial:
        lines.append(f"> **PARTIAL RUN** — {'; '.join(run.partial_reasons)}\n")
    lines += ["", "### Which should I deploy?", "", "_Computed from this run's VALID points only._", ""]
    lines += [f"- **{f.label}:** {f.text}  \n  _Rule: {f.rule}_" for f in rec.findings]
    lines += ["", f"**{rec.verdict}**", "", "Facts from documentation, not measured by this run:", ""]
    lines += [f"- {fact}" for fact in rec.facts]
    rows = [summary_point_cells(m) for m in analysis.results]
    lines += ["", "### Load points", "", _md_table(SUMMARY_POINT_COLUMNS, rows), ""]
    if analysis.knees:
        lines += ["### Knees", "", _md_table(KNEE_COLUMNS, [knee_cells(k) for k in analysis.knees]), ""]
    lines += ["### Figures", ""] + [f"- [{f.caption}]({FIGURES_DIR}/{f.name}.png)" for f in figures]
    lines += ["", "### Validity rules applied", ""] + [f"- {r}" for r in rules_text(analysis.rules)]
    return "\n".join(lines)


def render_markdown(
    analyses: Sequence[RunAnalysis], run_figures: Sequence[Sequence[Figure]], differing: Sequence[str]
) -> str:
    lines = ["# gvf report — " + ", ".join(a.run.run_id for a in analyses), ""]
    if len(analyses) > 1:
        lines.append(
            f"**These runs differ in {'; '.join(differing)}: they are not put on one axis.**"
            if differing
            else "The runs share backend, device and weights: the comparison figures put them on one axis."
        )
        lines.append("")
    lines += [run_section_markdown(a, f) for a, f in zip(analyses, run_figures, strict=True)]
    return "\n\n".join(lines) + "\n"
