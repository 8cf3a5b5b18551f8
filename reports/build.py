"""``gvf report``: write one run's (or a comparison's) HTML report, Markdown summary and figures.

``build_report`` analyses each run (``reports.analysis``), draws its figures
(``reports.figures``) and writes ``report.html`` (``reports.html_report``), ``summary.md``
(``reports.markdown_summary``), the figures as PNG files and the load-point tables as CSV
(each point over its trials, and every trial) beside them; ``main`` is what the
``gvf report`` command calls. Every document states the model, real or random weights
and the device, loudly where the numbers are not a real GPU measurement.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from reports.analysis import analyse
from reports.figures import FIGURES_DIR, Figure, comparison_figures, figures_for
from reports.html_report import comparison_html, render_html
from reports.labels import comparability
from reports.load import load_run
from reports.markdown_summary import render_markdown
from reports.metrics.points import metrics_frame
from reports.metrics.summaries import summaries_frame
from reports.tables import SUMMARY_CSV, TRIALS_CSV

HTML_FILE = "report.html"
MARKDOWN_FILE = "summary.md"


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
    prefixes = [f"{_safe_stem(a.run.run_id)}-" if several else "" for a in analyses]
    run_figures = [figures_for(a, prefix=p) for a, p in zip(analyses, prefixes, strict=True)]
    differing = comparability([a.run for a in analyses]) if several else []
    comparison = ""
    comparison_figs: list[Figure] = []
    if several:
        if not differing:
            comparison_figs = comparison_figures(analyses)
        comparison = comparison_html(analyses, comparison_figs, differing)
    target = Path(out) if out is not None else default_out(paths)
    (target / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
    for figure in comparison_figs + [f for figs in run_figures for f in figs]:
        (target / FIGURES_DIR / f"{figure.name}.png").write_bytes(figure.png)
    for analysis, prefix in zip(analyses, prefixes, strict=True):
        summaries_frame(analysis.summaries).to_csv(target / f"{prefix}{SUMMARY_CSV}", index=False)
        metrics_frame(analysis.results).to_csv(target / f"{prefix}{TRIALS_CSV}", index=False)
    html_path = target / HTML_FILE
    html_path.write_text(render_html(analyses, run_figures, comparison, prefixes), encoding="utf-8")
    (target / MARKDOWN_FILE).write_text(
        render_markdown(analyses, run_figures, differing, prefixes), encoding="utf-8"
    )
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
