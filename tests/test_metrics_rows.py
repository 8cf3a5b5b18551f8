"""reports.metrics.rows on hand-built tables with known answers: latency, decomposition, error
kinds, GPU overlaps, sample-floored percentiles and the mean in flight."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.metrics.rows import (
    COMPONENTS,
    decomposition,
    error_kind,
    gpu_overlaps,
    latency,
    latency_start,
    mean_in_flight,
    percentile,
)
from tests.helpers.reports_tables import RULES, table_of


def test_latency_uses_schedule_in_open_loop_and_send_otherwise() -> None:
    table = table_of(
        [
            {"t_sent": 1.0, "t_done": 1.5},
            {"t_scheduled": 2.0, "t_sent": 2.2, "t_done": 2.5},
        ]
    )
    assert latency_start(table).tolist() == pytest.approx([1.0, 2.0])
    assert latency(table).tolist() == pytest.approx([0.5, 0.5])


def test_percentiles_are_given_only_above_their_sample_floors() -> None:
    values = pd.Series(np.arange(1, 101, dtype=float))
    assert percentile(values, 0.5, 1) == pytest.approx(50.5)
    assert percentile(values, 0.9, RULES.min_samples_p90) == pytest.approx(90.1)
    assert percentile(values, 0.99, RULES.min_samples_p99) is None
    big = pd.Series(np.arange(1, 1001, dtype=float))
    assert percentile(big, 0.99, RULES.min_samples_p99) == pytest.approx(990.01)
    assert percentile(big, 0.999, RULES.min_samples_p999) is None


def test_percentile_ignores_missing_values_and_needs_one_sample() -> None:
    assert percentile(pd.Series([np.nan, 2.0, np.nan]), 0.5, 1) == pytest.approx(2.0)
    assert percentile(pd.Series([np.nan]), 0.5, 0) is None


def test_decomposition_fastapi_gpu_lock_pre_before_admission() -> None:
    # recv 0, pre 0..0.02, waits for the lock until 0.05, gpu 0.05..0.15, post 0.03, done at 0.2
    row = {
        "t_sent": 0.0,
        "t_done": 0.2,
        "t_recv": 0.0,
        "t_admit": 0.05,
        "t_gpu_start": 0.05,
        "t_gpu_end": 0.15,
        "t_send": 0.18,
        "pre_s": 0.02,
        "post_s": 0.03,
    }
    parts = decomposition(table_of([row])).iloc[0]
    assert list(parts.index) == list(COMPONENTS)
    assert parts.tolist() == pytest.approx([0.03, 0.02, 0.10, 0.03, 0.02])
    assert parts.sum() == pytest.approx(0.2)


def test_decomposition_gradio_queue_pre_after_admission() -> None:
    # accepted at 0.01, slot at 0.04, pre 0.04..0.06, gpu 0.06..0.16, post 0.02, done 0.25
    row = {
        "t_sent": 0.0,
        "t_done": 0.25,
        "t_recv": 0.01,
        "t_admit": 0.04,
        "t_gpu_start": 0.06,
        "t_gpu_end": 0.16,
        "t_send": 0.18,
        "pre_s": 0.02,
        "post_s": 0.02,
    }
    parts = decomposition(table_of([row])).iloc[0]
    assert parts["wait"] == pytest.approx(0.03)
    assert parts["protocol"] == pytest.approx(0.25 - 0.03 - 0.02 - 0.10 - 0.02)


def test_decomposition_is_missing_without_a_ledger_row() -> None:
    parts = decomposition(table_of([{"t_sent": 0.0, "t_done": 0.2}])).iloc[0]
    assert parts.isna().all()


def test_error_kind_is_the_text_before_the_colon_and_the_status() -> None:
    table = table_of(
        [
            {"ok": False, "status": 503, "error": "http: queue full"},
            {"ok": False, "status": 0, "error": "timeout: no answer after 30 s"},
            {"ok": False, "status": 500, "error": ""},
        ]
    )
    assert error_kind(table).tolist() == ["http [503]", "timeout [0]", "error [500]"]


def test_gpu_overlaps_count_others_and_depth_within_one_server_process() -> None:
    table = table_of(
        [
            {"t_gpu_start": 0.0, "t_gpu_end": 1.0},
            {"t_gpu_start": 0.5, "t_gpu_end": 1.5},
            {"t_gpu_start": 0.6, "t_gpu_end": 0.7},
            {"t_gpu_start": 2.0, "t_gpu_end": 3.0},
            {"t_gpu_start": 3.0, "t_gpu_end": 4.0},  # touching is not overlapping
            {"t_gpu_start": 0.5, "t_gpu_end": 1.5, "server": "gradio"},  # another process
            {"t_sent": 0.0},  # no GPU interval: no figure
        ]
    )
    found = gpu_overlaps(table)
    assert found["overlapping"].iloc[:6].tolist() == [2, 2, 2, 0, 0, 0]
    assert found["depth"].iloc[:6].tolist() == [1, 2, 3, 1, 1, 1]
    assert found.iloc[6].isna().all()


def test_gpu_overlaps_count_calls_not_rows_batch_mates_are_one_call() -> None:
    # a batch of three (one call, one shared interval), then a lone call that overlaps it, then a
    # batch of two alone: batch-mates never collide with each other, and depth counts calls
    table = table_of(
        [
            {"t_gpu_start": 0.0, "t_gpu_end": 1.0, "batch_id": 1, "batch_size": 3},
            {"t_gpu_start": 0.0, "t_gpu_end": 1.0, "batch_id": 1, "batch_size": 3},
            {"t_gpu_start": 0.0, "t_gpu_end": 1.0, "batch_id": 1, "batch_size": 3},
            {"t_gpu_start": 0.5, "t_gpu_end": 1.5, "batch_id": 2, "batch_size": 1},
            {"t_gpu_start": 2.0, "t_gpu_end": 3.0, "batch_id": 3, "batch_size": 2},
            {"t_gpu_start": 2.0, "t_gpu_end": 3.0, "batch_id": 3, "batch_size": 2},
            # a ledger without batch ids: each row is its own call
            {"t_gpu_start": 0.0, "t_gpu_end": 1.0, "server": "gradio"},
            {"t_gpu_start": 0.0, "t_gpu_end": 1.0, "server": "gradio"},
        ]
    )
    found = gpu_overlaps(table)
    assert found["overlapping"].tolist() == [1, 1, 1, 1, 0, 0, 1, 1]
    assert found["depth"].tolist() == [1, 1, 1, 2, 1, 1, 2, 2]


def test_mean_in_flight_clips_intervals_to_the_window() -> None:
    starts, ends = np.array([0.0, 2.0, 5.0]), np.array([4.0, 3.0, 20.0])
    # over [1, 11]: 3 s + 1 s + 6 s open, over 10 s
    assert mean_in_flight(starts, ends, 1.0, 11.0) == pytest.approx(1.0)
    assert np.isnan(mean_in_flight(starts, ends, 5.0, 5.0))
