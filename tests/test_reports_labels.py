"""reports.labels: every document and figure names the model, its weights and the device, loudly
where the numbers are not a real GPU measurement; runs of different models share no axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.labels import (
    comparability,
    comparison_footer,
    figure_footer,
    footer_is_loud,
    model_line,
    warnings_for,
)
from reports.load import LoadedRun, empty_table


def run_with(model: dict[str, str], run_id: str = "x", **meta: Any) -> LoadedRun:
    return LoadedRun(
        path=Path(run_id), table=empty_table(), meta={"run_id": run_id, "model": model, **meta}, points=[]
    )


SIM = {"backend": "sim", "device": "simulated", "weights": "none"}
U2NETP = {"backend": "u2netp", "device": "cpu", "weights": "real"}
NATIVE = {"backend": "birefnet_native", "device": "cuda:0", "weights": "random"}


def test_figure_footer_states_model_weights_and_device() -> None:
    # the forms docs/design.md §6 gives
    assert figure_footer(run_with(SIM)) == "sim · SIMULATED GPU — not a real GPU"
    assert figure_footer(run_with(U2NETP)) == "u2netp · real weights · cpu"
    assert figure_footer(run_with(NATIVE)) == "birefnet_native · RANDOM weights · cuda:0"
    assert "not recorded" in figure_footer(run_with({}))


def test_footer_is_loud_unless_real_weights_ran_on_a_real_device() -> None:
    assert footer_is_loud(run_with(SIM)) and footer_is_loud(run_with(NATIVE)) and footer_is_loud(run_with({}))
    assert not footer_is_loud(run_with(U2NETP))
    assert not footer_is_loud(run_with({**NATIVE, "weights": "real"}))


def test_comparison_footer_labels_each_run() -> None:
    runs = [run_with(U2NETP, "a"), run_with(NATIVE, "b")]
    assert comparison_footer(runs) == f"a: {figure_footer(runs[0])}; b: {figure_footer(runs[1])}"


def test_model_line_names_every_field_or_says_it_was_not_recorded() -> None:
    line = model_line(run_with({**NATIVE, "dtype": "float16", "detail": "Swin-L"}))
    assert all(value in line for value in ("birefnet_native", "Swin-L", "random", "cuda:0", "float16"))
    assert model_line(run_with({})).count("not recorded") == 4


def test_warnings_name_simulated_gpu_random_weights_cpu_and_no_model() -> None:
    assert len(warnings_for(run_with(SIM))) == 1
    assert warnings_for(run_with(U2NETP | {"device": "cuda:0"})) == []
    cpu = warnings_for(run_with(NATIVE | {"device": "cpu"}, servers={"fastapi": {"torch_threads": 3}}))
    assert len(cpu) == 2 and any("RANDOM" in w for w in cpu) and any("fastapi 3" in w for w in cpu)
    assert len(warnings_for(run_with({}))) == 1


def test_comparability_lists_what_differs() -> None:
    assert comparability([run_with(SIM, "a"), run_with(SIM, "b")]) == []
    differing = comparability([run_with(SIM, "a"), run_with(NATIVE, "b")])
    assert [d.split(":")[0] for d in differing] == ["backend", "device", "weights"]
    assert "birefnet_native / sim" in differing[0]
    assert comparability([run_with(U2NETP, "a"), run_with({**U2NETP, "device": "cuda:0"}, "b")]) == [
        "device: cpu / cuda:0"
    ]
