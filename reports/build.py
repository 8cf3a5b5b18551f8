"""Documents: one self-contained HTML report and a Markdown summary per run (or comparison).

``build_report`` loads each run, computes its metrics (``reports.metrics``), draws the
figures (``reports.plots``) and writes ``report.html`` (figures as base64 PNG, inline CSS,
nothing fetched from the network), ``summary.md`` and the figures as PNG files beside it.
``main`` is what the ``gvf report`` command calls. Every document states the model, real
or random weights and the device, loudly where the numbers are not a real GPU measurement.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reports import metrics, plots
from reports.load import Run, load_run
from reports.metrics import Knee, PointMetrics, Recommendation, ValidityRules

HTML_FILE = "report.html"
MARKDOWN_FILE = "summary.md"
FIGURES_DIR = "figures"
# What must match before two runs may share an axis.
COMPARABLE_KEYS: tuple[str, ...] = ("backend", "device", "weights")

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


@dataclass
class RunAnalysis:
    """One run with everything computed from it."""

    run: Run
    rules: ValidityRules
    results: list[PointMetrics]
    knees: list[Knee]
    recommendation: Recommendation

    @property
    def device(self) -> str:
        return str(self.run.model.get("device") or "")


@dataclass(frozen=True)
class Figure:
    """A drawn figure: file stem, caption and PNG bytes."""

    name: str
    caption: str
    png: bytes


def analyse(run: Run) -> RunAnalysis:
    rules = metrics.rules_from_mapping(run.meta.get("validity"))
    device = str(run.model.get("device") or "")
    results = metrics.point_metrics(run.table, run.points, rules, run_id=run.run_id, device=device)
    return RunAnalysis(run, rules, results, metrics.knees(results, rules), metrics.recommend(results, device))


def figures_for(analysis: RunAnalysis, prefix: str = "") -> list[Figure]:
    table, results, device = analysis.run.table, analysis.results, analysis.device
    simulated = device == plots.SIMULATED_DEVICE
    memory_caption = (
        "Peak SIMULATED memory vs concurrency (the sim backend's accounting per in-flight call, "
        "not a GPU measurement)"
        if simulated
        else "Peak GPU memory vs concurrency"
    )
    drawn = [
        (
            "latency_vs_load",
            "Latency percentiles vs load (each percentile only where the sample supports it)",
            plots.latency_vs_load(results),
        ),
        (
            "throughput_vs_load",
            "Throughput in the measured window vs load",
            plots.throughput_vs_load(results),
        ),
        (
            "throughput_vs_p90",
            "Throughput against p90 latency; ★ marks the knee",
            plots.throughput_vs_p90(results, analysis.knees),
        ),
        ("latency_cdf", "Latency CDF", plots.latency_cdf(table, results)),
        (
            "gpu_timeline",
            "GPU intervals in the collision scenario",
            plots.gpu_timeline(table, results, device),
        ),
        (
            "decomposition",
            "Latency decomposition: wait / pre / gpu / post / protocol, means over the successful "
            "requests with a ledger row",
            plots.decomposition_bars(results),
        ),
        ("memory", memory_caption, plots.memory_vs_concurrency(results, device)),
        ("closed_vs_open", "Closed-loop vs open-loop tail latency", plots.closed_vs_open_tail(results)),
    ]
    footer, loud = figure_footer(analysis.run), footer_is_loud(analysis.run)
    return [
        Figure(prefix + name, caption, plots.png_bytes(fig, footer, loud)) for name, caption, fig in drawn
    ]


# --- labels --------------------------------------------------------------------------


def model_line(run: Run) -> str:
    model = run.model
    detail = f" ({model['detail']})" if model.get("detail") else ""
    return (
        f"Model: {model.get('backend', 'not recorded')}{detail} · weights: "
        f"{model.get('weights', 'not recorded')} · "
        f"device: {model.get('device', 'not recorded')} · dtype: {model.get('dtype', 'not recorded')}"
    )


def _is_simulated(model: dict[str, Any]) -> bool:
    return model.get("backend") == "sim" or model.get("device") == "simulated"


def _has_random_weights(model: dict[str, Any]) -> bool:
    return "random" in str(model.get("weights", "")).lower()


def figure_footer(run: Run) -> str:
    """What every figure of the run carries: model · weights · device (docs/design.md §6), e.g.
    "u2netp · real weights · cpu", "sim · SIMULATED GPU — not a real GPU",
    "birefnet_native · RANDOM weights · cuda:0"."""
    model = run.model
    if not model:
        return "model not recorded — backend, weights and device unknown"
    backend = str(model.get("backend") or "backend not recorded")
    if _is_simulated(model):
        return f"{backend} · SIMULATED GPU — not a real GPU"
    weights = str(model.get("weights") or "not recorded")
    if _has_random_weights(model):
        weights_text = "RANDOM weights"
    elif weights.lower() == "real":
        weights_text = "real weights"
    else:
        weights_text = f"weights: {weights}"
    return f"{backend} · {weights_text} · {model.get('device') or 'device not recorded'}"


def footer_is_loud(run: Run) -> bool:
    """Whether the footer must stand out: a simulated GPU, random weights or no model recorded."""
    return not run.model or _is_simulated(run.model) or _has_random_weights(run.model)


def comparison_footer(runs: Sequence[Run]) -> str:
    """Each run's label, for a figure that puts several runs on one axis."""
    return "; ".join(f"{run.run_id}: {figure_footer(run)}" for run in runs)


def warnings_for(run: Run) -> list[str]:
    """Loud statements every document must carry for this run."""
    model = run.model
    found = []
    if _is_simulated(model):
        found.append(
            "SIMULATED GPU — not a real GPU measurement: the sim backend computes no model; its times "
            "are configured."
        )
    if _has_random_weights(model):
        found.append("RANDOM WEIGHTS — the masks are noise; only the timings mean anything.")
    if not model:
        found.append("The run recorded no model: backend, weights and device are unknown.")
    if str(model.get("device", "")).startswith("cpu"):
        servers = (run.meta.get("servers") or {}).items()
        threads = ", ".join(f"{kind} {s.get('torch_threads', '?')}" for kind, s in servers)
        found.append(
            "CPU run: a 'collision' is thread oversubscription, not a GPU effect "
            f"(server torch threads: {threads or 'not recorded'})."
        )
    return found


def comparability(analyses: Sequence[RunAnalysis]) -> list[str]:
    """What differs between runs among backend / device / weights ('' when comparable)."""
    differing = []
    for key in COMPARABLE_KEYS:
        values = {str(a.run.model.get(key, "not recorded")) for a in analyses}
        if len(values) > 1:
            differing.append(f"{key}: {' / '.join(sorted(values))}")
    return differing


# --- formatting ------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1e3:.1f}"


def _num(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / 2**20:.0f}"


POINT_COLUMNS: tuple[str, ...] = (
    "server",
    "client",
    "scenario",
    "load",
    "verdict",
    "measured / ok",
    "errors",
    "img/s",
    "thirds spread",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "decomposed mean (n)",
    "wait",
    "pre",
    "gpu",
    "post",
    "protocol",
    "collisions",
    "max depth",
    "inflation",
    "peak MiB",
    "Little client",
    "Little server",
    "send lag p99 ms",
    "reasons / notes",
)
TEXT_COLUMNS = {"server", "client", "scenario", "load", "verdict", "errors", "reasons / notes"}


def point_cells(m: PointMetrics) -> list[str]:
    errors = ", ".join(f"{k}: {v}" for k, v in m.errors.items()) or "—"
    little_client = f"{_num(m.client_in_flight)} vs {_num(m.client_rate_x_latency)}"
    little_server = f"{_num(m.server_in_flight)} vs {_num(m.server_rate_x_latency)}"
    return [
        m.server,
        m.client,
        m.scenario,
        m.load_point,
        m.verdict,
        f"{m.n_measured} / {m.n_ok}",
        errors,
        _num(m.throughput_rps),
        _pct(m.thirds_spread),
        _ms(m.p50_s),
        _ms(m.p90_s),
        _ms(m.p99_s),
        _ms(m.p999_s),
        _ms(m.max_s),
        "—" if m.decomposed_latency_s is None else f"{_ms(m.decomposed_latency_s)} ({m.n_decomposed})",
        _ms(m.wait_s),
        _ms(m.pre_s),
        _ms(m.gpu_s),
        _ms(m.post_s),
        _ms(m.protocol_s),
        _pct(m.collision_share),
        "—" if m.max_gpu_depth is None else str(m.max_gpu_depth),
        "—" if m.service_inflation is None else f"{m.service_inflation:.2f}×",
        _mib(m.peak_gpu_bytes),
        little_client,
        little_server,
        _ms(m.send_lag_p99_s),
        "; ".join(m.reasons + m.notes),
    ]


def knee_cells(k: Knee) -> list[str]:
    load = "none" if k.load is None else f"{k.load:g}"
    return [
        f"{k.server}/{k.client}",
        k.scenario,
        load,
        _ms(k.p90_s),
        _ms(k.baseline_p90_s),
        _ms(k.limit_s),
        k.reason,
    ]


KNEE_COLUMNS = ("series", "sweep", "knee load", "p90 ms", "single-stream p90 ms", "limit ms", "how")


def rules_text(rules: ValidityRules) -> list[str]:
    """The verdict rules, as applied, in words."""
    return [
        f"Warm-up excluded: the first {rules.warmup_fraction:.0%} of the window or "
        f"{rules.warmup_requests_per_user} "
        "requests per user (one user in open loop), whichever is longer.",
        f"Percentiles shown only with enough samples: p90 ≥ {rules.min_samples_p90}, p99 ≥ "
        f"{rules.min_samples_p99}, "
        f"p99.9 ≥ {rules.min_samples_p999}; a point missing a percentile is VALID for what it shows.",
        f"INVALID when the load process averaged > {rules.max_load_cpu_percent:g}% CPU.",
        f"INVALID (open loop) when p99 send lag > max({rules.max_send_lag_s * 1e3:g} ms, "
        f"{rules.max_send_lag_gap_fraction:.0%} of the mean scheduled gap); for bursts (`collisions`) "
        f"when p99 send lag > max({rules.max_send_lag_s * 1e3:g} ms, "
        f"{rules.max_send_lag_gap_fraction:.0%} of the median burst makespan), i.e. the burst's "
        "requests did not leave together.",
        "INVALID (unstable) when, over the window's three thirds: closed loop, throughput spreads by "
        f"more than {rules.max_thirds_spread:.0%} of its mean; open loop, completions (counted one "
        "median latency later) ÷ arrivals scheduled in a third (achieved ÷ offered) is off 1.0 by more "
        f"than {rules.max_thirds_spread:.0%} in any third (the server fell behind or was draining a "
        "backlog); bursts, images per second of "
        f"burst makespan over the thirds of the bursts spreads by more than {rules.max_thirds_spread:.0%}.",
        "INVALID when client-side or server-side Little's law (mean in-flight vs rate × mean latency) "
        "disagrees "
        f"by more than {rules.max_littles_law_disagreement:.0%}.",
        "INVALID when no request succeeded in the measured window, or when the run ended before the "
        "point finished.",
        f"Knee: the highest VALID load whose p90 stays within {rules.knee_factor:g}× the single-stream p90.",
    ]


# --- HTML ------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text))


def _html_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], badge_column: str | None = None
) -> str:
    head = "".join(f'<th class="{"text" if c in TEXT_COLUMNS else ""}">{_e(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for column, value in zip(columns, row, strict=True):
            content = (
                f'<span class="badge {_e(value)}">{_e(value)}</span>' if column == badge_column else _e(value)
            )
            align = "text" if column in TEXT_COLUMNS or column in KNEE_COLUMNS else ""
            cells.append(f'<td class="{align}">{content}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _html_banners(run: Run) -> str:
    parts = [f'<div class="banner">{_e(model_line(run))}</div>']
    parts += [f'<div class="banner loud">{_e(w)}</div>' for w in warnings_for(run)]
    if run.partial:
        reasons = "; ".join(run.partial_reasons)
        parts.append(
            '<div class="banner partial">PARTIAL RUN — this report shows what the run recorded before '
            f"it stopped: {_e(reasons)}</div>"
        )
    return "\n".join(parts)


def _html_recommendation(rec: Recommendation) -> str:
    items = "".join(
        f'<li><b>{_e(f.label)}:</b> {_e(f.text)}<br><span class="rule">Rule: {_e(f.rule)}</span></li>'
        for f in rec.findings
    )
    facts = "".join(f'<li class="fact">{_e(fact)}</li>' for fact in rec.facts)
    verdict_class = "verdict" if rec.recommends else "verdict none"
    return (
        "<h2>Which should I deploy?</h2>"
        '<p class="rule">Computed from this run\'s VALID points only.</p>'
        f'<ul>{items}</ul><div class="{verdict_class}">{_e(rec.verdict)}</div>'
        "<h3>Facts from documentation, not measured by this run</h3>"
        f"<ul>{facts}</ul>"
    )


def _img(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure id="fig-{_e(figure.name)}"><img alt="{_e(figure.caption)}" '
        f'src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(figure.caption)}</figcaption></figure>"
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
            f'<section id="run-{_e(run.run_id)}"><h2>Run {_e(run.run_id)}</h2>',
            _html_banners(run),
            f"<p>{len(run.table)} requests in {len(analysis.results)} load points: "
            f"{counts.get(metrics.VALID, 0)} VALID, {counts.get(metrics.INVALID, 0)} INVALID. Source: "
            f"{_e(run.path)}</p>",
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
            + "".join(f"<li>{_e(r)}</li>" for r in rules_text(analysis.rules))
            + "</ul>",
            f"<h2>run.json summary</h2><pre>{_e(_summary_json(run.meta))}</pre></section>",
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
            + _e("; ".join(differing))
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
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"
        "<p>gradio.Server vs hand-rolled FastAPI: what each costs, from raw per-request rows.</p>"
        f"{comparison}{sections}</body></html>"
    )


# --- Markdown --------------------------------------------------------------------------


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def clean(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


MD_POINT_COLUMNS = (
    "server",
    "client",
    "scenario",
    "load",
    "verdict",
    "img/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "collisions",
    "reasons",
)


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
    rows = [
        [
            m.server,
            m.client,
            m.scenario,
            m.load_point,
            m.verdict,
            _num(m.throughput_rps),
            _ms(m.p50_s),
            _ms(m.p90_s),
            _ms(m.p99_s),
            _pct(m.collision_share),
            "; ".join(m.reasons) or "—",
        ]
        for m in analysis.results
    ]
    lines += ["", "### Load points", "", _md_table(MD_POINT_COLUMNS, rows), ""]
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


# --- entry points ------------------------------------------------------------------------


def default_out(run_dirs: Sequence[Path]) -> Path:
    if len(run_dirs) == 1:
        return run_dirs[0] / "report"
    return run_dirs[0].parent / ("compare-" + "-vs-".join(p.name for p in run_dirs))


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def build_report(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Write report.html, summary.md and figures/ for one run or a comparison; return the HTML path."""
    if not run_dirs:
        raise ValueError("build_report needs at least one run directory")
    paths = [Path(p) for p in run_dirs]
    analyses = [analyse(load_run(p)) for p in paths]
    several = len(analyses) > 1
    run_figures = [figures_for(a, prefix=f"{_safe_stem(a.run.run_id)}-" if several else "") for a in analyses]
    differing = comparability(analyses) if several else []
    comparison = ""
    comparison_figures: list[Figure] = []
    if several:
        if not differing:
            combined = [m for a in analyses for m in a.results]
            footer = comparison_footer([a.run for a in analyses])
            loud = any(footer_is_loud(a.run) for a in analyses)
            comparison_figures = [
                Figure(
                    "compare-throughput_vs_load",
                    "All runs: throughput vs load",
                    plots.png_bytes(plots.throughput_vs_load(combined), footer, loud),
                ),
                Figure(
                    "compare-latency_vs_load",
                    "All runs: latency vs load",
                    plots.png_bytes(plots.latency_vs_load(combined), footer, loud),
                ),
            ]
        comparison = comparison_html(analyses, comparison_figures, differing)
    target = Path(out) if out is not None else default_out(paths)
    (target / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
    for figure in comparison_figures + [f for figs in run_figures for f in figs]:
        (target / FIGURES_DIR / f"{figure.name}.png").write_bytes(figure.png)
    html_path = target / HTML_FILE
    html_path.write_text(render_html(analyses, run_figures, comparison), encoding="utf-8")
    (target / MARKDOWN_FILE).write_text(render_markdown(analyses, run_figures, differing), encoding="utf-8")
    return html_path


def main(argv: Sequence[str] | None = None) -> int:
    """``gvf report RUN_DIR... [-o OUT]``: 0 on success, 2 when a run directory is missing."""
    parser = argparse.ArgumentParser(
        prog="gvf report", description="Build the HTML report and Markdown summary of one or more runs."
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output directory (default: RUN_DIR/report, or a compare-… folder beside the runs)",
    )
    args = parser.parse_args(argv)
    missing = [p for p in args.run_dirs if not p.is_dir()]
    if missing:
        print(f"gvf report: not a run directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    path = build_report(list(args.run_dirs), args.out)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
