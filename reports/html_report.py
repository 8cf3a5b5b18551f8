"""The HTML report: one self-contained page per run or comparison, the answer first.

Figures are embedded as base64 PNG and the CSS is inline: nothing is fetched from the
network. Each run opens with its verdict (the sentence with its intervals), the one chart
that carries it and the model banner with every warning; the evidence follows: the findings,
what MCP costs and each server's footprint (where the run measured them), the compact
load-point table (the full per-trial table folded away, both also as CSV beside the report),
Gradio's second opinion, abandoned requests and the soak where the run has them, knees, the
figures in a grid, the rules applied and the run.json summary.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from typing import Any

from reports import features
from reports.analysis import RunAnalysis
from reports.figures import ABANDON_FIGURE, BATCHING_FIGURE, HEADLINE, SOAK_FIGURE, Figure
from reports.labels import figure_footer, model_line, warnings_for
from reports.load import LoadedRun
from reports.metrics.deploy import Recommendation
from reports.metrics.rules import INVALID, VALID
from reports.tables import (
    ABANDON_COLUMNS,
    BATCH_COLUMNS,
    KNEE_COLUMNS,
    POINT_COLUMNS,
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
    point_cells,
    profiler_cells,
    rules_text,
    soak_cells,
    soak_rule,
    summary_cells,
)

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222}
body{margin:1rem auto;max-width:1400px;padding:0 1rem}
h1{font-size:1.4rem;margin:.4rem 0}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.text,th.text{text-align:left}
table.fit{width:100%}table.fit td:not(.text){white-space:nowrap}
.banner{padding:.5rem 1rem;border-radius:6px;margin:.4rem 0;background:#eef4fb;border:1px solid #bcd}
.loud{background:#fde8e8;border:2px solid #c0392b;font-weight:bold}
.partial{background:#fff4d6;border:2px solid #d68910;font-weight:bold}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:4px}
.badge{color:#fff;font-weight:bold;font-size:.75rem}
.VALID{background:#2e7d32}.INVALID{background:#c62828}
.verdict{font-size:1.05rem;padding:.8rem 1rem;background:#f6f9f0;border-left:5px solid #2e7d32}
.none{border-left-color:#c62828;background:#fdf0f0}
.rule{color:#555;font-size:.8rem}.fact{color:#444}
figure{margin:.6rem 0}figure img{max-width:100%;border:1px solid #eee}
.headline img{max-width:900px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:1rem}
.scroll{overflow-x:auto}td.text:last-child{min-width:18rem;overflow-wrap:anywhere}
details{margin:.5rem 0}summary{cursor:pointer;font-weight:bold}
pre{background:#f7f7f7;padding:.6rem;font-size:.75rem;overflow-x:auto}
"""


# Left-aligned columns (the others hold numbers, right-aligned).
TEXT_COLUMNS = {
    "server",
    "client",
    "scenario",
    "load",
    "verdict",
    "errors",
    "reasons / notes",
    "point",
    "note",
    "REST client",
    "not compared",
    "reasons",
    "memory",
    "held at the end",
    "clients giving up",
    *KNEE_COLUMNS,
}


def _escape(text: Any) -> str:
    return html.escape(str(text))


def _html_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], badge_column: str | None = None, fit: bool = False
) -> str:
    head = "".join(f'<th class="{"text" if c in TEXT_COLUMNS else ""}">{_escape(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for column, value in zip(columns, row, strict=True):
            content = _escape(value)
            if column == badge_column:
                content = f'<span class="badge {content}">{content}</span>'
            cells.append(f'<td class="{"text" if column in TEXT_COLUMNS else ""}">{content}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    css = "fit" if fit else ""
    table = f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _link(file_name: str) -> str:
    """A link to a file beside the report."""
    return f'<a href="{_escape(file_name)}">{_escape(file_name)}</a>'


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


def _img(figure: Figure, css: str = "") -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure id="fig-{_escape(figure.name)}" class="{css}"><img alt="{_escape(figure.caption)}" '
        f'src="data:image/png;base64,{data}">'
        f"<figcaption>{_escape(figure.caption)}</figcaption></figure>"
    )


def _verdict_section(analysis: RunAnalysis, headline: Figure | None) -> str:
    """The first screen of a run: the verdict, the chart that carries it, the model banner."""
    rec = analysis.recommendation
    run = analysis.run
    verdict_class = "verdict" if rec.recommends else "verdict none"
    return "\n".join(
        [
            f'<section id="verdict-{_escape(run.run_id)}" class="answer">',
            f"<h2>Which should I deploy? <small>(run {_escape(run.run_id)}: {_escape(figure_footer(run))})"
            "</small></h2>",
            f'<div class="{verdict_class}">{_escape(rec.verdict)}</div>',
            "" if headline is None else _img(headline, "headline"),
            _html_banners(run),
            "</section>",
        ]
    )


def _findings(rec: Recommendation) -> str:
    items = "".join(
        f"<li><b>{_escape(f.label)}:</b> {_escape(f.text)}<br>"
        f'<span class="rule">Rule: {_escape(f.rule)}</span></li>'
        for f in rec.findings
    )
    facts = "".join(f'<li class="fact">{_escape(fact)}</li>' for fact in rec.facts)
    return (
        '<h2>The evidence</h2><p class="rule">Computed from this run\'s VALID points only.</p>'
        f"<ul>{items}</ul><h3>Facts from documentation, not measured by this run</h3><ul>{facts}</ul>"
    )


def _features(analysis: RunAnalysis) -> str:
    """What MCP costs and the dependency footprint, where the run measured them."""
    parts = []
    if analysis.mcp:
        parts += [
            f"<h2>{_escape(features.MCP_HEADING)}</h2>",
            "".join(f"<p>{_escape(text)}</p>" for text in features.mcp_sentences(analysis.mcp)),
            _html_table(features.MCP_COLUMNS, [features.mcp_cells(c) for c in analysis.mcp], fit=True),
            f'<p class="rule">Rule: {_escape(features.MCP_RULE)}</p>',
        ]
    if analysis.footprint:
        parts += [
            f"<h2>{_escape(features.FOOTPRINT_HEADING)}</h2>",
            _html_table(features.FOOTPRINT_COLUMNS, features.footprint_rows(analysis.footprint)),
            f'<p class="rule">{_escape(features.FOOTPRINT_RULE)}</p>',
        ]
    return "\n".join(parts)


def _summary_json(meta: dict[str, Any]) -> str:
    summary = {k: v for k, v in meta.items() if k != "points"}
    summary["points"] = f"{len(meta.get('points') or [])} recorded (see the tables above)"
    return json.dumps(summary, indent=2, default=str)


def _table_section(
    title: str, rule: str, columns: Sequence[str], rows: list[list[str]], figure: Figure | None
) -> str:
    """A section of one table (with a verdict column) under its rule, and its figure."""
    return (
        f'<h2>{_escape(title)}</h2><p class="rule">{_escape(rule)}</p>'
        + _html_table(columns, rows, badge_column="verdict", fit=True)
        + ("" if figure is None else _img(figure))
    )


def _abandon_html(analysis: RunAnalysis, figure: Figure | None) -> str:
    if not analysis.abandon:
        return ""
    rows = [abandon_cells(a) for a in analysis.abandon]
    return _table_section("Abandoned requests", abandon_rule(), ABANDON_COLUMNS, rows, figure)


def _soak_html(analysis: RunAnalysis, figure: Figure | None) -> str:
    if not analysis.soak:
        return ""
    lines = "".join(f"<li><b>{_escape(t.line())}</b></li>" for t in analysis.soak)
    return (
        f'<h2>Soak</h2><ul>{lines}</ul><p class="rule">{_escape(soak_rule(analysis.rules))}</p>'
        + _html_table(SOAK_COLUMNS, [soak_cells(t) for t in analysis.soak], fit=True)
        + ("" if figure is None else _img(figure))
    )


def _batching_html(analysis: RunAnalysis, figure: Figure | None) -> str:
    if not analysis.batching:
        return ""
    rows = [batch_cells(b) for b in analysis.batching]
    return _table_section("Batching", batch_rule(), BATCH_COLUMNS, rows, figure)


def run_section_html(analysis: RunAnalysis, figures: Sequence[Figure], prefix: str = "") -> str:
    """One run: the verdict section, then the evidence section. ``prefix`` names this run's
    files beside the report (figures and CSV) where several runs share the folder."""
    run = analysis.run
    named = {f.name: f for f in figures}
    headline = named.get(prefix + HEADLINE)
    sectioned = [
        named.get(prefix + ABANDON_FIGURE),
        named.get(prefix + SOAK_FIGURE),
        named.get(prefix + BATCHING_FIGURE),
    ]
    others = [f for f in figures if f is not headline and f not in sectioned]
    verdicts = [s.verdict for s in analysis.summaries]
    profiler = (
        "<h2>Gradio's second opinion</h2><p class=\"rule\">Each measured gradio request joined to Gradio's "
        "own profiler trace by its event id: the ledger's wait and function span against Gradio's queue "
        "wait and function call.</p>"
        + _html_table(PROFILER_COLUMNS, [profiler_cells(c) for c in analysis.profiler], fit=True)
        if analysis.profiler
        else ""
    )
    return "\n".join(
        [
            _verdict_section(analysis, headline),
            f'<section id="run-{_escape(run.run_id)}" class="details">',
            f"<p>{len(run.table)} requests in {len(analysis.summaries)} load points × up to "
            f"{max((s.n_trials for s in analysis.summaries), default=0)} trials: {verdicts.count(VALID)} "
            f"points VALID, {verdicts.count(INVALID)} INVALID. Source: {_escape(run.path)}</p>",
            _findings(analysis.recommendation),
            _features(analysis),
            '<h2>Load points</h2><p class="rule">Each point over its trials: estimate (95% CI) — the '
            "t-interval over trials, or a bootstrap within one trial; p90 only where the pooled sample "
            f"meets its floor. As CSV: {_link(prefix + SUMMARY_CSV)}, every trial: "
            f"{_link(prefix + TRIALS_CSV)}.</p>",
            _html_table(
                SUMMARY_COLUMNS,
                [summary_cells(s) for s in analysis.summaries],
                badge_column="verdict",
                fit=True,
            ),
            "<details><summary>Every trial, every column</summary>"
            '<p class="rule">Latencies in ms; wait/pre/gpu/post/protocol are components of the mean latency '
            "of the successful requests with a ledger row, so they add up to “decomposed mean (n)”; the "
            "percentiles count timeouts too. In flight: the client's mean against the configured users "
            "(burst size); completions/s: the client's against the server ledger's.</p>"
            + _html_table(POINT_COLUMNS, [point_cells(m) for m in analysis.results], badge_column="verdict")
            + "</details>",
            profiler,
            _abandon_html(analysis, sectioned[0]),
            _soak_html(analysis, sectioned[1]),
            _batching_html(analysis, sectioned[2]),
            "<h2>Knees</h2>",
            _html_table(KNEE_COLUMNS, [knee_cells(k) for k in analysis.knees], fit=True)
            if analysis.knees
            else "<p>No sweep in this run.</p>",
            '<h2>Figures</h2><div class="grid">',
            *(_img(f) for f in others),
            "</div><h2>Validity rules applied</h2><ul>"
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
        _html_table(("run", "model", "state", "verdict"), rows, fit=True),
    ]
    if differing:
        parts.append(
            '<div class="banner loud">These runs differ in '
            + _escape("; ".join(differing))
            + ": they are not put on one axis. "
            "Each run's figures are shown in its own section below.</div>"
        )
    else:
        parts.append('<div class="grid">' + "".join(_img(f) for f in figures) + "</div>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(
    analyses: Sequence[RunAnalysis],
    run_figures: Sequence[Sequence[Figure]],
    comparison: str,
    prefixes: Sequence[str] | None = None,
) -> str:
    title = "gvf report — " + ", ".join(a.run.run_id for a in analyses)
    prefixes = prefixes or [""] * len(analyses)
    sections = "\n".join(
        run_section_html(a, f, p) for a, f, p in zip(analyses, run_figures, prefixes, strict=True)
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><h1>{_escape(title)}</h1>"
        f"{comparison}{sections}</body></html>"
    )
