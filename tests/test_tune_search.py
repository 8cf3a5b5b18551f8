"""loadtests.tune's pure parts: the coordinate ascent on known score surfaces, the flags and loads
of a configuration, and reading a tune directory's best flags (``gvf run --best-of``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.tune import (
    BATCH,
    BATCH_WAIT,
    CONCURRENCY,
    LOCK_SCOPE,
    Config,
    CoordinateAscent,
    TuneError,
    best_flags,
    config_flags,
    default_config,
    saturating_users,
    space_for,
    tuned_server_args,
)

FASTAPI = space_for("fastapi")


def _search(score, dims=FASTAPI, **kwargs) -> tuple[CoordinateAscent, list[Config]]:
    """Run the search to its end against ``score(config as dict)``; the configurations it measured."""
    search = CoordinateAscent(dims, **kwargs)
    measured = []
    while (config := search.propose()) is not None:
        assert config not in measured, "a configuration is measured once"
        measured.append(config)
        search.record(config, score(dict(config)))
    return search, measured


def test_the_search_finds_a_separable_optimum_and_starts_from_the_defaults() -> None:
    peak = {"batch": 4, "concurrency": 2, "lock-scope": "gpu", "batch-wait-ms": 5}

    def score(c: dict) -> float:
        return 10.0 - sum(v != peak[k] for k, v in c.items())

    search, measured = _search(score)
    assert measured[0] == default_config(FASTAPI)
    assert dict(search.best) == peak
    # each pass measures at most every other value of every flag (3 + 3 + 1 + 3), and there are two
    assert len(measured) <= 1 + 2 * (3 + 3 + 1 + 3)
    assert search.best_score == 10.0


def test_a_gain_below_min_gain_keeps_the_defaults() -> None:
    # batch 8 scores 10.4 against batch 1's 10.05: +3.5 %, within a shared box's drift
    search, measured = _search(lambda c: 10.0 + 0.05 * int(c["batch"]), dims=(BATCH,), min_gain=0.05)
    assert dict(search.best) == {"batch": 1}
    assert len(measured) == 4


def test_batch_wait_is_searched_only_where_a_batch_forms() -> None:
    # batching never pays: the wait means nothing at batch 1 and is never measured
    _, measured = _search(lambda c: 10.0 if c["batch"] == 1 else 1.0)
    assert all(dict(c)["batch-wait-ms"] == BATCH_WAIT.default for c in measured)
    assert all(
        "--batch-wait-ms" not in " ".join(config_flags(c, FASTAPI)) for c in measured if dict(c)["batch"] == 1
    )


def test_no_configuration_meeting_the_slo_never_moves_the_best() -> None:
    search, _ = _search(lambda c: 0.0, dims=(BATCH, CONCURRENCY))
    assert search.best == default_config((BATCH, CONCURRENCY))


def test_a_second_pass_follows_an_interaction_between_flags() -> None:
    # concurrency pays only once batching is on, and batch 8 pays only at concurrency 2
    table = {(1, 1): 5.0, (2, 1): 6.0, (4, 1): 7.0, (8, 1): 6.5, (4, 2): 9.0, (8, 2): 12.0}

    def score(c: dict) -> float:
        return table.get((int(c["batch"]), int(c["concurrency"])), 1.0)

    search, _ = _search(score, dims=(BATCH, CONCURRENCY))
    assert dict(search.best) == {"batch": 8, "concurrency": 2}


def test_configuration_flags_loads_and_spaces() -> None:
    config = (("batch", 4), ("concurrency", 2), ("lock-scope", "request"), ("batch-wait-ms", 20))
    assert config_flags(config, FASTAPI) == [
        "--batch=4",
        "--concurrency=2",
        "--lock-scope=request",
        "--batch-wait-ms=20",
    ]
    assert saturating_users(config, 32) == (8, 16)
    assert saturating_users((("batch", 8), ("concurrency", 8)), 32) == (32,)
    assert space_for("gradio") == (BATCH, CONCURRENCY)
    assert space_for("fastapi") == (BATCH, CONCURRENCY, LOCK_SCOPE, BATCH_WAIT)
    assert space_for("fastapi-naive") == ()  # no lock, no batcher: nothing to tune
    assert space_for("fastapi", only=["batch"]) == (BATCH,)


def test_best_flags_read_a_tune_directory_and_become_kind_flag_args(tmp_path: Path) -> None:
    (tmp_path / "tune.json").write_text(
        json.dumps({"best": {"fastapi": {"flags": ["--batch=4"]}, "gradio": {"flags": ["--batch=2"]}}})
    )
    flags = best_flags(tmp_path)
    assert tuned_server_args(flags, ["fastapi", "fastapi-naive"]) == ["fastapi:--batch=4"]
    with pytest.raises(TuneError, match="is it a gvf tune directory"):
        best_flags(tmp_path / "nowhere")
    (tmp_path / "tune.json").write_text(json.dumps({"best": {}, "outcome": "failed"}))
    with pytest.raises(TuneError, match="no best configuration"):
        best_flags(tmp_path)
