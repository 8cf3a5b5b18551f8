"""The documents end to end: the HTML report and Markdown summary of a run carry its analysis
(model, warnings, verdicts, the deploy verdict, the figures), opened in headless Chromium for
a real smoke run; a partial (failed) run; comparisons of compatible and incompatible runs."""

from __future__ import annotations

import html
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from reports import build
from reports.analysis import RunAnalysis, analyse
from reports.figures import FIGURES_DIR, HEADLINE
from reports.labels import comparability, figure_footer, model_line, warnings_for
from reports.load import load_run
from reports.metrics.rules import INVALID, VALID
from reports.tables import SUMMARY_CSV, TRIALS_CSV
from tests.helpers.reports_tables import make_run_dir

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
FIGURE_COUNT = 8


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixture run and its report, built through the `gvf report` entry point."""
    run_dir = make_run_dir(
        tmp_path_factory.mktemp("runs") / "20270115-080000-smoke", trials=2, profiling=True
    )
    assert build.main([str(run_dir)]) == 0
    return run_dir / "report" / build.HTML_FILE


def analysis_of(report: Path) -> RunAnalysis:
    """The analysis of the run whose default report this is (RUN_DIR/report/report.html)."""
    return analyse(load_run(report.parent.parent))


def test_html_is_self_contained(smoke_report: Path) -> None:
    text = smoke_report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "external reference in the report"
    assert "<script" not in text and "<link" not in text
    assert text.count('src="data:image/png;base64,') == FIGURE_COUNT


def test_html_carries_the_model_warnings_verdicts_and_recommendation(smoke_report: Path) -> None:
    text = smoke_report.read_text(encoding="utf-8")
    analysis = analysis_of(smoke_report)
    run, rec = analysis.run, analysis.recommendation
    assert html.escape(model_line(run)) in text
    assert warnings_for(run) and all(
        f'class="banner loud">{html.escape(w)}<' in text for w in warnings_for(run)
    )
    # one badge per point in the compact table and one per trial in the full one
    for verdict in (VALID, INVALID):
        expected = [s.verdict for s in analysis.summaries].count(verdict)
        expected += [m.verdict for m in analysis.results].count(verdict)
        assert text.count(f'class="badge {verdict}"') == expected > 0
    for s in analysis.summaries:  # every INVALID point with its trials' reasons
        if not s.valid:
            assert html.escape("; ".join(s.reasons + s.notes)) in text
    for m in analysis.results:
        if not m.valid:
            assert html.escape("; ".join(m.reasons + m.notes)) in text
    assert rec.recommends and f'<div class="verdict">{html.escape(rec.verdict)}</div>' in text
    assert all(html.escape(f.text) in text and html.escape(f.rule) in text for f in rec.findings)
    assert all(html.escape(fact) in text for fact in rec.facts)
    assert "<h2>Gradio's second opinion</h2>" in text and len(analysis.profiler) == 7
    assert 'class="banner partial"' not in text


def test_html_leads_with_the_answer(smoke_report: Path) -> None:
    """The verdict, then the one chart that carries it, then the model banner; details after."""
    text = smoke_report.read_text(encoding="utf-8")
    analysis = analysis_of(smoke_report)
    first_section = text.index("<section")
    order = [
        text.index('<div class="verdict">'),
        text.index(f'id="fig-{HEADLINE}"'),
        text.index(html.escape(model_line(analysis.run))),
        text.index("<h2>The evidence</h2>"),
        text.index("<h2>Load points</h2>"),
        text.index("<details>"),
        text.index("<h2>Figures</h2>"),
    ]
    assert text[first_section:].startswith(f'<section id="verdict-{analysis.run.run_id}"')
    assert first_section < order[0] and order == sorted(order)
    assert f'<a href="{SUMMARY_CSV}">' in text and f'<a href="{TRIALS_CSV}">' in text


def test_markdown_summary_csv_and_figure_files(smoke_report: Path) -> None:
    out = smoke_report.parent
    summary = (out / build.MARKDOWN_FILE).read_text(encoding="utf-8")
    analysis = analysis_of(smoke_report)
    assert all(f"> **{w}**" in summary for w in warnings_for(analysis.run))
    verdict = f"**{analysis.recommendation.verdict}**"
    assert summary.index(verdict) < summary.index(f"]({FIGURES_DIR}/{HEADLINE}.png)")
    assert summary.index(f"]({FIGURES_DIR}/{HEADLINE}.png)") < summary.index(model_line(analysis.run))
    point_rows = [
        line
        for line in summary.splitlines()
        if re.match(r"\| \S+ \| \S+ \| \S+ \| \S+ \| \d+ \| (IN)?VALID \|", line)
    ]
    assert len(point_rows) == len(analysis.summaries)
    figures = sorted(p.name for p in (out / FIGURES_DIR).glob("*.png"))
    assert len(figures) == FIGURE_COUNT
    assert all(f"({FIGURES_DIR}/{name})" in summary for name in figures)
    points = pd.read_csv(out / SUMMARY_CSV)
    trials = pd.read_csv(out / TRIALS_CSV)
    assert len(points) == len(analysis.summaries) and len(trials) == len(analysis.results)
    assert list(points["verdict"]) == [s.verdict for s in analysis.summaries]
    assert points["p90_method"].notna().sum() == sum("p90" in s.intervals for s in analysis.summaries)


def test_every_figure_file_names_the_model(smoke_report: Path) -> None:
    """The PNGs are read on their own: each carries the run's model line (drawn, and in its
    metadata, which is what a test can read back)."""
    footer = figure_footer(analysis_of(smoke_report).run)
    pngs = sorted((smoke_report.parent / FIGURES_DIR).glob("*.png"))
    assert len(pngs) == FIGURE_COUNT
    for png in pngs:
        with Image.open(png) as image:
            assert image.text.get("Description") == footer, png.name


VIEWPORT = {"width": 1400, "height": 900}
LAYOUT = """() => {
  const first = document.querySelector('body section');
  const verdict = first ? first.querySelector('.verdict') : null;
  const compact = document.querySelector('section.details .scroll');
  const root = document.documentElement;
  return {
    first: first ? first.id : null,
    verdictTop: verdict ? verdict.getBoundingClientRect().top : null,
    headlineTop: (first && first.querySelector('figure.headline'))
      ? first.querySelector('figure.headline').getBoundingClientRect().top : null,
    table: compact ? [compact.scrollWidth, compact.clientWidth] : null,
    page: [root.scrollWidth, root.clientWidth],
    images: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
    badges: document.querySelectorAll('.badge').length,
  };
}"""


def open_in_chromium(report: Path, screenshot: Path) -> tuple[dict[str, Any], list[str]]:
    """The report opened as a person opens it, at 1,400 px: its layout and any problem seen
    (console errors, page errors, network requests)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get update && apt-get install -y "
            "chromium)"
        )
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=args, viewport=VIEWPORT
        )
        try:
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "request",
                lambda r: (
                    problems.append(f"network: {r.url}") if not r.url.startswith(("file:", "data:")) else None
                ),
            )
            page.goto(report.as_uri(), wait_until="load")
            layout = page.evaluate(LAYOUT)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    return layout, problems


def assert_leads_with_the_answer(layout: dict[str, Any], run_id: str) -> None:
    """The verdict is the first section, on the first screen with its chart under it, and
    neither the page nor the compact load-point table scrolls sideways at 1,400 px."""
    assert layout["first"] == f"verdict-{run_id}"
    assert 0 <= layout["verdictTop"] < VIEWPORT["height"]
    assert layout["headlineTop"] > layout["verdictTop"]
    scroll_width, client_width = layout["table"]
    assert scroll_width <= client_width, layout
    assert layout["page"][0] <= layout["page"][1], layout


def test_fixture_report_leads_with_the_answer_in_chromium(smoke_report: Path, tmp_path: Path) -> None:
    layout, problems = open_in_chromium(smoke_report, tmp_path / "report.png")
    assert problems == []
    assert layout["images"] == FIGURE_COUNT
    assert_leads_with_the_answer(layout, analysis_of(smoke_report).run.run_id)


@pytest.mark.slow
def test_html_renders_in_headless_chromium(smoke_run: Path, tmp_path: Path) -> None:
    """The report of a real `gvf run --profile smoke`, as a person opens it."""
    report = smoke_run / "report" / build.HTML_FILE
    screenshot = tmp_path / "report.png"
    layout, problems = open_in_chromium(report, screenshot)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "report-smoke.png")
    assert problems == []
    assert layout["images"] == FIGURE_COUNT
    assert layout["badges"] > 0
    assert screenshot.stat().st_size > 10_000
    assert_leads_with_the_answer(layout, analyse(load_run(smoke_run)).run.run_id)


def test_partial_run_builds_and_says_so(tmp_path: Path) -> None:
    run_dir = make_run_dir(
        tmp_path / "20270115-090000-smoke", outcome="failed", backend="u2netp", device="cpu", weights="real"
    )
    analysis = analyse(load_run(run_dir))
    run = analysis.run
    assert run.partial and len(run.points) == 20  # the point it died in is not recorded
    recorded = {(p.server, p.client, p.scenario, p.load_point) for p in run.points}
    (unfinished,) = [
        m for m in analysis.results if (m.server, m.client, m.scenario, m.load_point) not in recorded
    ]
    assert unfinished.verdict == INVALID
    html_path = build.build_report([run_dir], tmp_path / "out")
    text = html_path.read_text(encoding="utf-8")
    assert 'class="banner partial"' in text
    assert html.escape("; ".join(unfinished.reasons + unfinished.notes)) in text
    assert all(html.escape(reason) in text for reason in run.partial_reasons)
    assert all(html.escape(w) in text for w in warnings_for(run)) and len(warnings_for(run)) == 1  # CPU only
    summary = (tmp_path / "out" / build.MARKDOWN_FILE).read_text(encoding="utf-8")
    assert "**PARTIAL RUN**" in summary and all(reason in summary for reason in run.partial_reasons)


def test_comparison_refuses_a_shared_axis_for_different_models(tmp_path: Path) -> None:
    sim = make_run_dir(tmp_path / "a", overloaded_cpu=False)
    cuda = make_run_dir(tmp_path / "b", backend="birefnet_native", device="cuda:0", weights="random")
    text = build.build_report([sim, cuda], tmp_path / "cmp").read_text(encoding="utf-8")
    differing = comparability([load_run(sim), load_run(cuda)])
    assert len(differing) == 3
    (banner,) = re.findall(r'<div class="banner loud">These runs differ in ([^<]*)</div>', text)
    assert all(html.escape(d) in banner for d in differing)
    assert 'id="fig-compare-' not in text
    assert text.count('src="data:image/png;base64,') == 2 * FIGURE_COUNT  # each run's own figures


def test_comparison_of_compatible_runs_shares_axes(tmp_path: Path) -> None:
    first = make_run_dir(tmp_path / "a", seed=1)
    second = make_run_dir(tmp_path / "b", seed=2)
    html_path = build.build_report([first, second])
    assert html_path.parent == tmp_path / "compare-a-vs-b"
    text = html_path.read_text(encoding="utf-8")
    assert 'id="fig-compare-throughput_vs_load"' in text and "These runs differ" not in text
    assert text.count('src="data:image/png;base64,') == 2 * FIGURE_COUNT + 2
    with Image.open(html_path.parent / FIGURES_DIR / "compare-throughput_vs_load.png") as image:
        label = figure_footer(load_run(first))
        assert image.text.get("Description") == f"a: {label}; b: {label}"


def test_main_refuses_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main([str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
