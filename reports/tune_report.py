"""The report of a ``gvf tune`` directory: ``tune.md``, ``tune.html`` and ``figures/tune.png``.

Read from the directory alone — ``tune.json`` (the search, its SLO, which run measured which
configuration) and every run's table under ``runs/`` — and recomputed from the rows with
``reports.metrics.tune`` (the same goodput rule the search scored by):

1. the answer: best gradio against best FastAPI (goodput, each at its own load, the paired ratio
   with its interval), next to default against default, and the exact flags to deploy with;
2. per server, every configuration tried: each load's throughput and p90 with their intervals, its
   verdict, whether it met the SLO, and whether it lies on the throughput-against-p90 Pareto
   frontier of that server's points;
3. a scatter of those points per server, the frontier drawn, the SLO as a line;
4. what the budget cut, and the model line (a simulated GPU said loudly).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from reports import plots
from reports.analysis import analyse
from reports.labels import figure_footer, footer_is_loud, model_line, warnings_for
from reports.load import LoadedRun, load_run
from reports.markdown_summary import markdown_table
from reports.metrics.summaries import THROUGHPUT, PointSummary
from reports.metrics.tune import GoodputVerdict, goodput_verdict, pareto_frontier, within_slo
from reports.schema import TUNE_FILE, ScenarioName
from reports.tables import interval_cell

MARKDOWN = "tune.md"
HTML = "tune.html"
FIGURE = "figures/tune.png"


@dataclass(frozen=True)
class Tried:
    """One load of one configuration tried on one server, from its run."""

    server: str
    flags: str
    role: str
    run_id: str
    summary: PointSummary
    met_slo: bool
    on_frontier: bool = False


def _flags_text(flags: Sequence[str]) -> str:
    return " ".join(flags) or "(defaults)"


def tried_points(tune_dir: Path, data: dict[str, Any], slo_s: float) -> tuple[list[Tried], list[LoadedRun]]:
    """Every load of every configuration tried, per server, frontier marked; and the loaded runs."""
    found: list[Tried] = []
    runs: list[LoadedRun] = []
    for entry in data.get("runs") or []:
        loaded = load_run(tune_dir / entry["path"])
        runs.append(loaded)
        if loaded.table.empty:
            continue
        for summary in analyse(loaded).summaries:
            if summary.scenario != ScenarioName.THROUGHPUT or summary.server not in entry["flags"]:
                continue
            flags = _flags_text(entry["flags"][summary.server])
            found.append(
                Tried(
                    summary.server, flags, entry["role"], entry["run_id"], summary, within_slo(summary, slo_s)
                )
            )
    marked: list[Tried] = []
    for server in dict.fromkeys(t.server for t in found):
        own = [t for t in found if t.server == server]
        shown = [i for i, t in enumerate(own) if _xy(t) is not None and t.summary.valid]
        frontier = {shown[i] for i in pareto_frontier([_xy(own[i]) or (0.0, 0.0) for i in shown])}
        marked += [replace(t, on_frontier=i in frontier) for i, t in enumerate(own)]
    return marked, runs


def _xy(t: Tried) -> tuple[float, float] | None:
    rate, p90 = t.summary.estimate(THROUGHPUT), t.summary.estimate("p90")
    return None if rate is None or p90 is None else (rate, p90)


def _verdict(tune_dir: Path, data: dict[str, Any], role: str, slo_s: float) -> GoodputVerdict | None:
    entry = next((e for e in data.get("runs") or [] if e["role"] == role), None)
    if entry is None:
        return None
    loaded = load_run(tune_dir / entry["path"])
    if loaded.table.empty:
        return None
    return goodput_verdict(analyse(loaded).summaries, slo_s)


def _goodput_cells(label: str, verdict: GoodputVerdict, flags: dict[str, list[str]]) -> list[list[str]]:
    rows = []
    for g in (verdict.gradio, verdict.fastapi):
        rows.append(
            [
                label,
                g.server,
                _flags_text(flags.get(g.server, [])),
                interval_cell(g.throughput),
                "—" if g.users is None else str(g.users),
                interval_cell(g.p90, scale=1e3, spec=".0f"),
            ]
        )
    return rows


GOODPUT_COLUMNS = (
    "configuration",
    "server",
    "flags",
    "goodput img/s (95% CI)",
    "at users",
    "p90 ms (95% CI)",
)
TRIED_COLUMNS = (
    "server",
    "flags",
    "run",
    "users",
    "verdict",
    "img/s (95% CI)",
    "p90 ms (95% CI)",
    "SLO",
    "frontier",
)


def _tried_cells(t: Tried) -> list[str]:
    return [
        t.server,
        t.flags,
        f"{t.role} {t.run_id}",
        str(t.summary.users),
        t.summary.verdict,
        interval_cell(t.summary.intervals.get(THROUGHPUT)),
        interval_cell(t.summary.intervals.get("p90"), scale=1e3, spec=".0f"),
        "met" if t.met_slo else "missed",
        "★" if t.on_frontier else "",
    ]


def scatter(tried: Sequence[Tried], slo_s: float) -> plt.Figure:
    """Throughput against p90 per server: every load tried (hollow: INVALID), the frontier, the SLO."""
    servers = list(dict.fromkeys(t.server for t in tried))
    if not servers:
        return plots.message_figure("gvf tune", "no configuration was measured")
    fig, axes = plt.subplots(1, len(servers), figsize=(6.5 * len(servers), 4.8), squeeze=False)
    for ax, server in zip(axes[0], servers, strict=True):
        own = [t for t in tried if t.server == server and _xy(t) is not None]
        for t in own:
            rate, p90 = _xy(t) or (0.0, 0.0)
            colour = "#4f81bd" if t.met_slo else "#c0504d"
            ax.scatter(
                p90 * 1e3,
                rate,
                marker="o",
                facecolors=colour if t.summary.valid else "none",
                edgecolors=colour,
            )
            ax.annotate(f"{t.flags} u{t.summary.users}", (p90 * 1e3, rate), fontsize=5, alpha=0.8)
        front = sorted((_xy(t) or (0.0, 0.0) for t in own if t.on_frontier), key=lambda xy: xy[1])
        if front:
            ax.plot(
                [p * 1e3 for _, p in front],
                [r for r, _ in front],
                "k--",
                linewidth=1,
                label="Pareto frontier",
            )
        ax.axvline(slo_s * 1e3, color="#c0504d", linewidth=1, label=f"SLO p90 {slo_s * 1e3:.0f} ms")
        ax.set(title=f"{server}: configurations tried", xlabel="p90 ms", ylabel="images/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("blue: met the SLO; red: missed it; hollow: INVALID", fontsize=9)
    fig.tight_layout()
    return fig


def build_tune_report(tune_dir: Path) -> Path:
    """Write tune.md, tune.html and figures/tune.png into ``tune_dir``; return the Markdown path."""
    data = json.loads((tune_dir / TUNE_FILE).read_text())
    slo_ms = (data.get("slo") or {}).get("p90_ms")
    slo_s = slo_ms / 1e3 if slo_ms else float("inf")
    tried, runs = tried_points(tune_dir, data, slo_s)
    best_flags = {s: list(e.get("flags") or []) for s, e in (data.get("best") or {}).items()}
    default_flags = {s: [] for s in data.get("servers") or []}
    verdicts = [
        (label, verdict, flags)
        for label, role, flags in (("best", "best", best_flags), ("default", "defaults", default_flags))
        if (verdict := _verdict(tune_dir, data, role, slo_s)) is not None
    ]
    figure_path = tune_dir / FIGURE
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    first = next((r for r in runs if r.model), None)
    footer = figure_footer(first) if first else "no run recorded a model"
    figure_path.write_bytes(
        plots.png_bytes(scatter(tried, slo_s), footer, first is None or footer_is_loud(first))
    )
    sections = _sections(data, tried, verdicts, first, best_flags)
    (tune_dir / MARKDOWN).write_text(_markdown(sections), encoding="utf-8")
    (tune_dir / HTML).write_text(_html(sections), encoding="utf-8")
    return tune_dir / MARKDOWN


@dataclass(frozen=True)
class Section:
    title: str
    lines: list[str]  # paragraphs (plain text)
    columns: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    image: str | None = None


def _sections(
    data: dict[str, Any],
    tried: Sequence[Tried],
    verdicts: Sequence[tuple[str, GoodputVerdict, dict[str, list[str]]]],
    run: LoadedRun | None,
    best_flags: dict[str, list[str]],
) -> list[Section]:
    slo = data.get("slo") or {}
    elapsed, budget = data.get("elapsed_s"), data.get("budget_s")
    head = [
        model_line(run) if run else "Model: no run recorded one",
        *(w for w in (warnings_for(run) if run else [])),
        f"Outcome: {data.get('outcome')} {data.get('outcome_detail') or ''}".strip(),
        f"SLO: p90 ≤ {slo.get('p90_ms', '—')} ms ({slo.get('how', 'not set')}). Goodput: the most images/s a "
        "configuration served at a VALID closed-loop load whose pooled p90 met the SLO.",
        f"Search: {data['search']['method']}, flags in this order: "
        + "; ".join(
            f"{s}: {', '.join(f) or 'nothing to tune'}" for s, f in data["search"]["dimensions"].items()
        )
        + f"; loads: {data['search']['loads']}; {data['search']['repeat']} trials per candidate, "
        f"{data['search']['final_repeat']} for the default and best runs.",
        f"Time: {elapsed if elapsed is not None else '—'} s of a {budget:.0f} s budget.",
    ]
    answer = [f"{label} vs {label}: {verdict.sentence()}" for label, verdict, _ in verdicts]
    deploy = [
        f"{server}: {' '.join(entry.get('command') or [])}"
        for server, entry in (data.get("best") or {}).items()
    ]
    deploy.append("rerun the full comparison at these settings: gvf run --best-of <this directory>")
    sections = [
        Section("gvf tune: each server at its best", head),
        Section(
            "Best against best, default against default",
            [*answer, "Each at its own goodput load, paired over trials run interleaved in one run."],
            GOODPUT_COLUMNS,
            [row for label, verdict, flags in verdicts for row in _goodput_cells(label, verdict, flags)],
        ),
        Section("Deploy with", deploy),
        Section(
            "Configurations tried",
            ["Every load of every run (★: on that server's throughput-against-p90 Pareto frontier)."],
            TRIED_COLUMNS,
            [_tried_cells(t) for t in tried],
            FIGURE,
        ),
    ]
    skipped = [f"{s['server']} {_flags_text(s['flags'])}: {s['why']}" for s in data.get("skipped") or []]
    if skipped:
        sections.append(Section("Not measured (budget)", skipped))
    return sections


def _markdown(sections: Sequence[Section]) -> str:
    out: list[str] = []
    for i, section in enumerate(sections):
        out += [f"{'#' if i == 0 else '##'} {section.title}", ""]
        out += [f"- {line}" if section.title == "Deploy with" else f"{line}\n" for line in section.lines]
        if section.columns:
            out += ["", markdown_table(section.columns, section.rows)]
        if section.image:
            out += ["", f"![configurations tried]({section.image})"]
        out.append("")
    return "\n".join(out)


def _html(sections: Sequence[Section]) -> str:
    body = []
    for i, section in enumerate(sections):
        tag = "h1" if i == 0 else "h2"
        body.append(f"<{tag}>{html.escape(section.title)}</{tag}>")
        body += [f"<p>{html.escape(line)}</p>" for line in section.lines]
        if section.columns:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in section.rows
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        if section.image:
            body.append(f'<img src="{html.escape(section.image)}" style="max-width:100%">')
    style = (
        "body{font-family:sans-serif;max-width:1400px;margin:auto}td,th{border:1px solid #ccc;padding:2px}"
    )
    return f"<!doctype html><meta charset=utf-8><title>gvf tune</title><style>{style}</style>" + "".join(body)
