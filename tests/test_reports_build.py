"""The documents: HTML report and Markdown summary of a smoke run, opened in headless
Chromium; a partial (failed) run; comparisons of compatible and incompatible runs."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from reports_fixtures import make_run_dir

from reports import build, plots
from reports.load import Run, empty_table, load_run
from reports.metrics import PointMetrics

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
FIGURE_COUNT = 8


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke run and its report, built through the `gvf report` entry point."""
    run_dir = make_run_dir(tmp_path_factory.mktemp("runs") / "20270115-080000-smoke")
    assert build.main([str(run_dir)]) == 0
    return run_dir / "report" / build.HTML_FILE


def test_html_is_self_contained(smoke_report: Path) -> None:
    text = smoke_report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "external reference in the report"
    assert "<script" not in text and "<link" not in text
    assert text.count('src="data:image/png;base64,') == FIGURE_COUNT


def test_html_states_model_verdicts_and_recommendation(smoke_report: Path) -> None:
    text = smoke_report.read_text(encoding="utf-8")
    assert "Model: sim" in text and "SIMULATED GPU — not a real GPU measurement" in text
    assert 'class="badge VALID"' in text and 'class="badge INVALID"' in text
    assert "Which should I deploy?" in text and "FastAPI serves" in text
    assert "Facts from documentation, not measured by this run" in text
    assert "run.json summary" in text and "PARTIAL RUN" not in text
    assert "load process averaged 95% CPU" in text  # the fixture's overloaded point, with its reason


def test_markdown_summary_and_figure_files(smoke_report: Path) -> None:
    out = smoke_report.parent
    summary = (out / build.MARKDOWN_FILE).read_text(encoding="utf-8")
    assert (
        "**SIMULATED GPU" in summary and "### Which should I deploy?" in summary and "| INVALID |" in summary
    )
    figures = sorted(p.name for p in (out / build.FIGURES_DIR).glob("*.png"))
    assert len(figures) == FIGURE_COUNT
    assert all(f"{build.FIGURES_DIR}/{name}" in summary for name in figures)


def test_every_figure_file_names_the_model(smoke_report: Path) -> None:
    """The PNGs are read on their own: each carries the run's model line (drawn, and in its
    metadata, which is what a test can read back)."""
    pngs = sorted((smoke_report.parent / build.FIGURES_DIR).glob("*.png"))
    assert len(pngs) == FIGURE_COUNT
    for png in pngs:
        with Image.open(png) as image:
            assert image.text.get("Description") == "sim · SIMULATED GPU — not a real GPU", png.name


def test_decomposition_text_names_the_rows_it_covers(smoke_report: Path) -> None:
    text = smoke_report.read_text(encoding="utf-8")
    assert "add up to the mean latency" not in text
    assert "components of the mean latency of the successful requests with a ledger row" in text
    assert "decomposed mean (n)" in text


def _run_with(model: dict[str, str]) -> Run:
    return Run(path=Path("x"), table=empty_table(), meta={"run_id": "x", "model": model}, points=[])


def test_figure_footer_states_model_weights_and_device() -> None:
    sim = _run_with({"backend": "sim", "device": "simulated", "weights": "none"})
    u2netp = _run_with({"backend": "u2netp", "device": "cpu", "weights": "real"})
    native = _run_with({"backend": "birefnet_native", "device": "cuda:0", "weights": "random"})
    assert build.figure_footer(sim) == "sim · SIMULATED GPU — not a real GPU"
    assert build.figure_footer(u2netp) == "u2netp · real weights · cpu"
    assert build.figure_footer(native) == "birefnet_native · RANDOM weights · cuda:0"
    assert "not recorded" in build.figure_footer(_run_with({}))
    assert build.footer_is_loud(sim) and build.footer_is_loud(native) and not build.footer_is_loud(u2netp)
    assert build.comparison_footer([u2netp, native]) == (
        "x: u2netp · real weights · cpu; x: birefnet_native · RANDOM weights · cuda:0"
    )


def test_memory_figure_plots_simulated_memory_as_such() -> None:
    points = [
        PointMetrics(
            run_id="r",
            server="fastapi-naive",
            client="fastapi",
            scenario="collisions",
            load_point=f"burst={k}",
            users=k,
            rate=None,
            load=float(k),
            verdict="VALID",
            peak_gpu_bytes=(512 + 256 * k) * 2**20,
        )
        for k in (1, 2, 4)
    ]
    simulated = plots.memory_vs_concurrency(points, "simulated")
    (ax,) = simulated.axes
    assert ax.get_title().startswith("SIMULATED memory") and "not a GPU measurement" in ax.get_title()
    assert ax.get_ylabel() == "simulated GiB" and len(ax.get_lines()) == 1
    on_cpu = plots.memory_vs_concurrency(points, "cpu")
    assert not on_cpu.axes[0].get_lines()  # a message, no data
    plots.plt.close(simulated)
    plots.plt.close(on_cpu)


@pytest.mark.slow
def test_html_renders_in_headless_chromium(smoke_run: Path, tmp_path: Path) -> None:
    """The report of a real `gvf run --profile smoke`, as a person opens it."""
    report = smoke_run / "report" / build.HTML_FILE
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get update && apt-get install -y "
            "chromium)"
        )
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    screenshot = tmp_path / "report.png"
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
            profile, executable_path=str(CHROMIUM), headless=True, args=args
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
            loaded = page.evaluate(
                "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
            )
            badges = page.locator(".badge").count()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "report-smoke.png")
    assert problems == []
    assert loaded == FIGURE_COUNT
    assert badges > 0
    assert screenshot.stat().st_size > 10_000


def test_partial_run_builds_and_says_so(tmp_path: Path) -> None:
    run_dir = make_run_dir(
        tmp_path / "20270115-090000-smoke", outcome="failed", backend="u2netp", device="cpu", weights="real"
    )
    run = load_run(run_dir)
    assert run.partial and len(run.points) == 20  # the point it died in is not recorded
    html_path = build.build_report([run_dir], tmp_path / "out")
    text = html_path.read_text(encoding="utf-8")
    assert "PARTIAL RUN" in text and "run outcome is failed" in text and "half-written line" in text
    assert "ended before this point finished" in text
    assert "thread oversubscription" in text and "SIMULATED GPU" not in text
    assert (
        "device is cpu: peak GPU memory exists only with CUDA" not in text
    )  # that is said inside the figure
    assert "**PARTIAL RUN**" in (tmp_path / "out" / build.MARKDOWN_FILE).read_text(encoding="utf-8")


def test_comparison_refuses_a_shared_axis_for_different_models(tmp_path: Path) -> None:
    sim = make_run_dir(tmp_path / "a", overloaded_cpu=False)
    cuda = make_run_dir(tmp_path / "b", backend="birefnet_native", device="cuda:0", weights="random")
    text = build.build_report([sim, cuda], tmp_path / "cmp").read_text(encoding="utf-8")
    assert (
        "These runs differ in backend: birefnet_native / sim; device: cuda:0 / simulated; weights: "
        "none / random" in text
    )
    assert "they are not put on one axis" in text
    assert "RANDOM WEIGHTS" in text and 'id="fig-compare-' not in text
    assert text.count('src="data:image/png;base64,') == 2 * FIGURE_COUNT


def test_comparison_of_compatible_runs_shares_axes(tmp_path: Path) -> None:
    first = make_run_dir(tmp_path / "a", seed=1)
    second = make_run_dir(tmp_path / "b", seed=2)
    html_path = build.build_report([first, second])
    assert html_path.parent == tmp_path / "compare-a-vs-b"
    text = html_path.read_text(encoding="utf-8")
    assert 'id="fig-compare-throughput_vs_load"' in text and "not put on one axis" not in text
    with Image.open(html_path.parent / build.FIGURES_DIR / "compare-throughput_vs_load.png") as image:
        label = "sim · SIMULATED GPU — not a real GPU"
        assert image.text.get("Description") == f"a: {label}; b: {label}"


def test_warnings_name_random_weights_and_cpu() -> None:
    meta = {"model": {"backend": "birefnet_native", "weights": "random", "device": "cpu"}}
    run = Run(path=Path("x"), table=empty_table(), meta=meta, points=[])
    warnings = build.warnings_for(run)
    assert any(w.startswith("RANDOM WEIGHTS") for w in warnings) and any(
        "thread oversubscription" in w for w in warnings
    )


def test_main_refuses_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main([str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
