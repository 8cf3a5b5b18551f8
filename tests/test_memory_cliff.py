"""The report's memory-vs-concurrency figure marks where a server fell off the memory cliff (503
in its GPU stage): a real ``gvf run`` of collision bursts on sim with room for two images in
flight, where the no-lock control's bursts of four run out and the locked servers never do."""

from __future__ import annotations

from pathlib import Path

from reports import plots
from reports.analysis import analyse
from reports.load import load_run
from tests.helpers.runs import gvf_run


def test_the_memory_figure_marks_where_the_naive_server_ran_out(tmp_path: Path) -> None:
    # 1.1 GB: the weights (0.54 GB) and two images (0.27 GB each) fit, a third does not
    args = ("--profile", "smoke", "--scenarios", "collisions", "--no-report")
    run_dir = gvf_run(tmp_path, *args, "--server-arg=--sim-memory-gb=1.1")
    analysis = analyse(load_run(run_dir))
    refused = {(s.server, s.load_point): sum(m.n_oom for m in s.trials) for s in analysis.summaries}
    assert refused[("fastapi-naive", "burst=4")] > 0, refused
    assert refused[("fastapi-naive", "burst=2")] == 0, refused
    assert all(count == 0 for (server, _), count in refused.items() if server != "fastapi-naive"), refused

    figure = plots.memory_vs_concurrency(analysis.summaries, analysis.device)
    (ax,) = figure.axes
    assert "out of memory: 503 in the GPU stage" in ax.get_legend_handles_labels()[1]
    marks = [text.get_text() for text in ax.texts if "OOM" in text.get_text()]
    assert marks == [f"fastapi-naive: OOM {refused[('fastapi-naive', 'burst=4')]}/16"], marks
