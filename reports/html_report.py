"""The HTML report: one self-contained page per run or comparison.

Figures are embedded as base64 PNG and the CSS is inline: nothing is fetched from the
network. Each run's section states the model, the warnings and whether the run is
partial before any number, then the deploy verdict, the load points, knees, figures,
the rules applied and the run.json summary.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from reports.analysis import RunAnalysis
from reports.figures import Figure
from reports.labels import model_line, warnings_for
from reports.load import LoadedRun
from reports.metrics.deploy import Recommendation
from reports.metrics.rules import INVALID, VALID
from reports.tables import KNEE_COLUMNS, POINT_COLUMNS, knee_cells, point_cells, rules_text

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222}
body{margin:2rem auto;max-width:1400px;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.text,th.text{text-align:left}
.banner{padding:.7rem 1rem;border-radius:6px;margin:.4rem 0;background:#eef4fb;border:1px solid #bcd}
.loud{background:#fde8e8;border:2px solid #c0392b;font-weight:bold}
.partial{background:#fff4d6;border:2px solid #d68910;font-weight:bold}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:4px}
.badge{color:#fff;font-weight:bold;font-size:.75rem}
.VALID{background:#2e7d32}.INVALID{background:#c62828}
.verdict{font-size:1.05rem;padding:.8rem 1rem;background:#f6f9f0;border-left:5px solid #2e7d32}
.none{border-left-color:#c62828;background:#fdf0f0}
.rule{color:#555;font-size:.8rem}.fact{color:#444}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}
.scroll{overflow-x:auto}td.text:last-child{min-width:24rem}
pre{background:#f7f7f7;padding:.6rem;font-size:.75rem;overflow-x:auto}
"""


# Left-aligned columns (the others hold numbers, right-aligned).
TEXT_COLUMNS = {"server", "client", "scenario", "load", "verdict", "errors", "reasons / notes"}


def _escape(text: Any) -> str:
    return html.escape(str(text))


def _html_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], badge_column: str | None = None
) -> str:
    head = "".join(f'<th class="{"text" if c in TEXT_COLUMNS else ""}">{_escape(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for column, value in zip(columns, row, strict=True):
            content = _escape(value)
            if column == badge_column:
                content = f'<span class="badge {content}">{content}</span>'
            align = "text" if column in TEXT_COLUMNS or column in KNEE_COLUMNS else ""
            cells.append(f'<td class="{align}">{content}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _html_banners(run: LoadedRun) -> str:
    parts = [f'<div class="banner">{_escape(model_line(run))}</div>']
    parts += [f'<div class="banner loud">{_escape(w)}</div>' for w in warnings_for(run)]
    if run.partial:
        reasons = "; ".join(run.partial_reasons)
        parts.append(
            '<div class="banner partial">PARTIAL RUN — this report shows what the run recorded before '
            f"it stopped: {_escape(reasons)}</div>"
        )
    return "\n".join(parts)


def _html_recommendation(rec: Recommendation) -> str:
    items = "".join(
        f"<li><b>{_escape(f.label)}:</b> {_escape(f.text)}<br>"
        f'<span class="rule">Rule: {_escape(f.rule)}</span></li>'
        for f in rec.findings
    )
    facts = "".join(f'<li class="fact">{_escape(fact)}</li>' for fact in rec.facts)
    verdict_class = "verdict" if rec.recommends else "verdict none"
    return (
        "<h2>Which should I deploy?</h2>"
        '<p class="rule">Computed from this run\'s VALID points only.</p>'
        f'<ul>{items}</ul><div class="{verdict_class}">{_escape(rec.verdict)}</div>'
        "<h3>Facts from documentation, not measured by this run</h3>"
        f"<ul>{facts}</ul>"
    )


def _img(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure id="fig-{_escape(figure.name)}"><img alt="{_escape(figure.caption)}" '
        f'src="data:image/png;base64,{data}">'
        f"<figcaption>{_escape(figure.caption)}</figcaption></figure>"
    )


def _summary_json(meta: dict[str, Any]) -> str:
    summary = {k: v for k, v in meta.items() if k != "points"}
    summary["points"] = f"{len(meta.get('points') or [])} recorded (see the table above)"
    return json.dumps(summary, indent=2, default=str)


def run_section_html(analysis: RunAnalysis, figures: Sequence[Figure]) -> str:
    run = analysis.run
    counts = (
        pd.Series([m.verdict for m in analysis.results]).value_counts().to_dict() if analysis.results else {}
    )
    return "\n".join(
        [
            f'<section id="run-{_escape(run.run_id)}"><h2>Run {_escape(run.run_id)}</h2>',
            _html_banners(run),
            f"<p>{len(run.table)} requests in {len(analysis.results)} load points: "
            f"{counts.get(VALID, 0)} VALID, {counts.get(INVALID, 0)} INVALID. Source: "
            f"{_escape(run.path)}</p>",
            _html_recommendation(analysis.recommendation),
            '<h2>Load points</h2><p class="rule">Latencies in ms; wait/pre/gpu/post/protocol are '
            "components of the mean latency of the successful requests with a ledger row (timeouts and "
            "rows without a ledger join are left out), so they add up to that mean, shown as "
            "“decomposed mean (n)”; the percentiles also count timeouts. "
            "Little: mean in-flight vs rate × mean latency.</p>",
            _html_table(POINT_COLUMNS, [point_cells(m) for m in analysis.results], badge_column="verdict"),
            "<h2>Knees</h2>",
            _html_table(KNEE_COLUMNS, [knee_cells(k) for k in analysis.knees])
            if analysis.knees
            else "<p>No sweep in this run.</p>",
            "<h2>Figures</h2>",
            *(_img(f) for f in figures),
            "<h2>Validity rules applied</h2><ul>"
            + "".join(f"<li>{_escape(r)}</li>" for r in rules_text(analysis.rules))
            + "</ul>",
            f"<h2>run.json summary</h2><pre>{_escape(_summary_json(run.meta))}</pre></section>",
        ]
    )


def comparison_html(
    analyses: Sequence[RunAnalysis], figures: Sequence[Figure], differing: Sequence[str]
) -> str:
    rows = [
        [
            a.run.run_id,
            model_line(a.run),
            "partial" if a.run.partial else "complete",
            a.recommendation.verdict,
        ]
        for a in analyses
    ]
    parts = [
        '<section id="comparison"><h2>Comparison of runs</h2>',
        _html_table(("run", "model", "state", "verdict"), rows),
    ]
    if differing:
        parts.append(
            '<div class="banner loud">These runs differ in '
            + _escape("; ".join(differing))
            + ": they are not put on one axis. "
            "Each run's figures are shown in its own section below.</div>"
        )
    else:
        parts += [_img(f) for f in figures]
    parts.append("</section>")
    return "\n".join(parts)


def render_html(
    analyses: Sequence[RunAnalysis], run_figures: Sequence[Sequence[Figure]], comparison: str
) -> str:
    title = "gvf report — " + ", ".join(a.run.run_id for a in analyses)
    sections = "\n".join(run_section_html(a, f) for a, f in zip(analyses, run_figures, strict=True))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_escape(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{_escape(title)}</h1>"
        "<p>gradio.Server vs hand-rolled FastAPI: what each costs, from raw per-request rows.</p>"
        f"{comparison}{sections}</body></html>"
    )
